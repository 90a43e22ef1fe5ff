"""Each fix's effect on mAP: the runs of `benchmarks.ablation` with `--preset=official` against
the same runs with one fix added (one --ablation_dir each), mean ± std over seeds, the
difference of the means, and the same-seed differences (a seed fixes the initial weights, the
batches and the dropout masks, so a seed's two runs differ by the fix alone): their mean ± std
and on how many seeds the fix raised mAP@0.5.

    python -m benchmarks.fix_effects --base runs/abl-official \
        --fix "rezero_padding + packed=runs/fix5-padding" --fix "..." [--variant d2net] [--seeds 0,1,2]

Reads each `VARIANT-seedN/results.json`; prints a Markdown table. `--verbatim` prints each
NAME as given (for runs that revert an official behaviour rather than add a fix).
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np


def scores(ablation_dir: str, variant: str, seeds: set[int] | None = None) -> dict[int, np.ndarray]:
    """{seed: [mAP@0.5, average mAP] (%)} of every finished seed (of `seeds` only, when given)."""
    out = {}
    for path in glob.glob(os.path.join(ablation_dir, f"{variant}-seed*", "results.json")):
        seed = int(os.path.basename(os.path.dirname(path))[len(f"{variant}-seed"):])
        if seeds is not None and seed not in seeds:
            continue
        with open(path) as f:
            r = json.load(f)
        out[seed] = np.array([100 * r["mAP"][list(r["tiou_thresholds"]).index(0.5)], 100 * r["average_mAP"]])
    if not out:
        raise SystemExit(f"{ablation_dir}: no finished {variant} run (results.json)"
                         + (f" of seeds {sorted(seeds)}" if seeds is not None else ""))
    return dict(sorted(out.items()))


def mean_std(values: np.ndarray) -> str:
    return f"{values.mean():.1f} ± {values.std():.1f}"


def effect_row(label: str, base: dict[int, np.ndarray], runs: dict[int, np.ndarray]) -> str:
    """A table row: the runs' mean ± std, the difference of the means, and the same-seed
    differences over the seeds both have (mean ± std, seeds up at tIoU 0.5)."""
    s = np.stack(list(runs.values()))
    d = s.mean(0) - np.stack(list(base.values())).mean(0)
    common = [seed for seed in runs if seed in base]
    same_seed = "- | - | -"
    if common:
        paired = np.stack([runs[seed] - base[seed] for seed in common])
        up = int((paired[:, 0] > 0).sum())
        same_seed = (f"{paired[:, 0].mean():+.1f} ± {paired[:, 0].std():.1f} | {up}/{len(common)} | "
                     f"{paired[:, 1].mean():+.1f} ± {paired[:, 1].std():.1f}")
    return (f"| {label} | {len(s)} | {mean_std(s[:, 0])} | {d[0]:+.1f} | {mean_std(s[:, 1])} | {d[1]:+.1f} | "
            f"{same_seed} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--fix", action="append", default=[], help="NAME=ABLATION_DIR")
    parser.add_argument("--variant", default="d2net")
    parser.add_argument("--verbatim", action="store_true", help="row names as given, without 'official + '")
    parser.add_argument("--seeds", help="comma-separated: only these seeds of every folder (the base included), so "
                        "that the means compare the same seeds")
    args = parser.parse_args()
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    base = scores(args.base, args.variant, seeds)
    print("| run | seeds | mAP@0.5 | change | avg 0.1-0.7 | change | same-seed change @0.5 | seeds up @0.5 | "
          "same-seed change avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    b = np.stack(list(base.values()))
    print(f"| official | {len(b)} | {mean_std(b[:, 0])} | | {mean_std(b[:, 1])} | | | | |")
    for spec in args.fix:
        name, _, folder = spec.partition("=")
        print(effect_row(name if args.verbatim else f"official + {name}", base, scores(folder, args.variant, seeds)))


if __name__ == "__main__":
    main()
