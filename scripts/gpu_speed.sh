#!/usr/bin/env bash
# The GPU figures of docs/performance.md as one command, offline (random weights built from
# evaluate/configs/sd21-base.json; nothing is downloaded):
#
#     bash scripts/gpu_speed.sh            # SD 2.1-base, 512x512 -> results/speed-gpu.json + table
#     MODEL=sd15 bash scripts/gpu_speed.sh
#
# Times every ADI step variant, Textual Inversion and the batch-3 UNet floor in fp32 and bf16
# (SDPA), with and without gradient checkpointing, with CUDA peak memory; then the
# end-to-end estimate (paper recipe vs the suite's default) from measured DreamBooth, LoRA,
# generation and ADI step times. FLOP counts come from the CPU's meta-device count
# (results/speed-$MODEL-counts.json, made here if missing). About 5 minutes on an H100 (an estimate); what is measured so far is kept in
# results/speed-gpu.partial.json should the run be cut short.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-sd21-base}
DTYPES=${DTYPES:-fp32,bf16}  # DTYPES=fp32,bf16,fp16 adds fp16 (counted as bf16)
ITERS=${ITERS:-5}
OUT=${OUT:-results/speed-gpu.json}
COUNTS=results/speed-$MODEL-counts.json
export TRANSFORMERS_VERBOSITY=error DIFFUSERS_VERBOSITY=error HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
if [ ! -f "$COUNTS" ]; then
  python -m actionbench speed --model "$MODEL" --device cpu --dtype "$DTYPES" --checkpointing both --iters 0 --out "$COUNTS"
fi
python -m actionbench speed --model "$MODEL" --device cuda --dtype "$DTYPES" --checkpointing both \
  --iters "$ITERS" --warmup 2 --e2e --counts "$COUNTS" --out "$OUT"
