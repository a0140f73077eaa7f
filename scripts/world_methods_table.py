"""Every method and ADI ablation on ActionWorld: merge demo reports into one table.

    python scripts/world_methods_table.py results/world-demo results/world-methods [--out results/world-methods/all.md]

Rows are methods (method specs as given to ``actionbench demo --methods``), columns the
actions present in every report for that method; the first report that has a
(action, method) pair wins. Prints markdown: action / subject / total accuracy per action,
their mean, and the share of animal prompts judged human-like.
"""

import argparse
import json
from pathlib import Path


def merge(folders: list[str]) -> dict:
    results: dict = {}
    for folder in folders:
        for action, by in json.loads((Path(folder) / "demo.json").read_text())["results"].items():
            for method, r in by.items():
                results.setdefault(method, {}).setdefault(action, r)
    return results


def markdown(results: dict, actions: list[str]) -> str:
    head = "| method | " + " | ".join(f"{a}: action / subject / total" for a in actions) + " | mean total | animals drawn human |"
    lines = [head, "|---" * (len(actions) + 3) + "|"]
    for method, by in results.items():
        if not all(a in by for a in actions):
            continue
        cells = [f"{by[a]['action']:.0%} / {by[a]['subject']:.0%} / **{by[a]['total']:.0%}**" for a in actions]
        mean = sum(by[a]["total"] for a in actions) / len(actions)
        leak = sum(by[a].get("human_on_animals", float("nan")) for a in actions) / len(actions)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean:.1%} | {leak:.0%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("folders", nargs="+")
    p.add_argument("--actions", default=None, help="comma-separated (default: those of the last folder)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    results = merge(args.folders)
    actions = args.actions.split(",") if args.actions else list(json.loads((Path(args.folders[-1]) / "demo.json").read_text())["results"])
    text = markdown(results, actions)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
