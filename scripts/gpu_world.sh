#!/usr/bin/env bash
# Train the ActionWorld model on a lent GPU, then run the demo table there (all 8 actions).
# Run on the device machine from the repo root, with the wheels in .whl/ (diffusers and
# transformers; the machine has torch) and scratch/world-gpu/ holding config.json and the
# autoencoder (vae.safetensors, vae_decoder.safetensors). Writes under $OUT.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
TRAIN_S=${TRAIN_S:-330}; TOTAL_S=${TOTAL_S:-560}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
t0=$SECONDS
timeout $((TRAIN_S + 120)) python3 -m actionbench.cli world train --resume --out scratch/world-gpu --steps 100000 \
    --device cuda --time-budget "$TRAIN_S" --workers 14 --export actionbench/world/model 2>&1 | grep -v "render + encode" | tail -20
echo "train wall s: $((SECONDS - t0))" | tee -a "$OUT/gpu.txt"
cp scratch/world-gpu/log.jsonl "$OUT/log.jsonl"
tar -cf "$OUT/model-unet.tar" actionbench/world/model/unet
tar -cf "$OUT/model-rest.tar" --exclude=actionbench/world/model/unet actionbench/world/model
left=$((TOTAL_S - SECONDS - 15))
if [ "$left" -gt 30 ]; then
  t1=$SECONDS
  timeout "$left" python3 -m actionbench.cli demo --actions all --device cuda --out /tmp/demo 2>&1 | grep -v "it/s\]\|s/it\]" | tail -40
  echo "demo wall s: $((SECONDS - t1)) (of $left allowed)" | tee -a "$OUT/gpu.txt"
  tar -cf "$OUT/demo.tar" --exclude=learned -C /tmp demo
fi
ls -la "$OUT"
