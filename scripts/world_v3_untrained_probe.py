"""Probe of issue #23 item 1: does the v3 text prompt name salute and pray through the random
vectors of never-trained tokens?

The benchmark actions' phrases are in no v3 caption, so their tokens' embedding rows were
never trained (832 of the 876 rows; "person", "sks", "and" among them). This sets every
never-trained row to the mean of the trained word rows (a neutral, "unknown word" vector),
in memory only, and measures the fidelity report again (``--n 4``: 36 text prompts and 36
action-free prompts per action, v3 judge). If the text prompt's excess over action-free
prompts came from the random rows' directions, it would vanish here.

    python scripts/world_v3_untrained_probe.py --out results/world-v3/untrained_mean_probe.json   # ~95 s, 2 threads
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from actionbench.models import load_pipeline
from actionbench.world import render_v3 as W
from actionbench.world.fidelity import measure_fidelity
from actionbench.world.phenomena import text_action_rates


def trained_rows(tok) -> list[int]:
    """Token ids that occur in some v3 training caption (or the empty one: bos, eos, padding)."""
    caps = [W.caption(s, a, c) for s in W.SUBJECTS for a in W.ACTIONS for c in W.CONTEXTS] + [""]
    ids = tok(caps, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    return sorted({i for row in ids for i in row})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/world-v3/untrained_mean_probe.json")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline("world-v3")
    tok = pipe.tokenizer
    trained = trained_rows(tok)
    special = {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}
    emb = pipe.text_encoder.get_input_embeddings().weight
    words = [i for i in trained if i not in special]
    untrained = sorted(set(range(emb.shape[0])) - set(trained))
    with torch.no_grad():
        emb[untrained] = emb[words].mean(0)
    t0 = time.time()
    rep = measure_fidelity(pipe=pipe, model="world-v3", world="v3", n=args.n)
    text, free = text_action_rates(rep)
    out = {"what": "v3 model with every never-trained token row set to the mean of the trained word rows (in memory)",
           "rows": {"vocabulary": emb.shape[0], "trained": len(trained), "set_to_mean": len(untrained)},
           "n_per_prompt_set": rep["action_free"]["n"], "text_action_acc": text, "action_free_rate": free,
           "named_action_acc": round(100 * rep["named"]["action_acc"], 1),
           "seconds": round(time.time() - t0, 1), "threads": args.threads,
           "command": "python scripts/world_v3_untrained_probe.py"}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
