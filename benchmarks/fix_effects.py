"""Each fix's effect on mAP: the runs of `benchmarks.ablation` with `--preset=official` against
the same runs with one fix added (one --ablation_dir each), mean ± std over seeds and the
difference of the means.

    python -m benchmarks.fix_effects --base runs/abl-official \
        --fix "rezero_padding + packed=runs/abl-fix-padding" --fix "..." [--variant d2net]

Reads each `VARIANT-seedN/results.json`; prints a Markdown table. `--verbatim` prints each
NAME as given (for runs that revert an official behaviour rather than add a fix).
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np


def scores(ablation_dir: str, variant: str) -> np.ndarray:
    """[seeds, 2]: mAP@0.5 and average mAP (%) of every finished seed."""
    rows = []
    for path in sorted(glob.glob(os.path.join(ablation_dir, f"{variant}-seed*", "results.json"))):
        with open(path) as f:
            r = json.load(f)
        rows.append([100 * r["mAP"][list(r["tiou_thresholds"]).index(0.5)], 100 * r["average_mAP"]])
    if not rows:
        raise SystemExit(f"{ablation_dir}: no finished {variant} run (results.json)")
    return np.array(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--fix", action="append", default=[], help="NAME=ABLATION_DIR")
    parser.add_argument("--variant", default="d2net")
    parser.add_argument("--verbatim", action="store_true", help="row names as given, without 'official + '")
    args = parser.parse_args()
    base = scores(args.base, args.variant)
    print("| run | seeds | mAP@0.5 | change | avg 0.1-0.7 | change |")
    print("|---|---|---|---|---|---|")
    print(f"| official | {len(base)} | {base[:, 0].mean():.1f} ± {base[:, 0].std():.1f} | | "
          f"{base[:, 1].mean():.1f} ± {base[:, 1].std():.1f} | |")
    for spec in args.fix:
        name, _, folder = spec.partition("=")
        s = scores(folder, args.variant)
        d = s.mean(0) - base.mean(0)
        label = name if args.verbatim else f"official + {name}"
        print(f"| {label} | {len(s)} | {s[:, 0].mean():.1f} ± {s[:, 0].std():.1f} | {d[0]:+.1f} | "
              f"{s[:, 1].mean():.1f} ± {s[:, 1].std():.1f} | {d[1]:+.1f} |")


if __name__ == "__main__":
    main()
