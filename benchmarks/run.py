"""All speed and memory benchmarks in one Markdown report: `python -m benchmarks.run [--quick]`.

Runs the train-step (alone and against the PyTorch reference of the official network; the
latter needs torch), evaluation and inference benchmarks, each in its own process (so
each peak RSS is its own), and writes `benchmarks/RESULTS.md` (median, min, max over
repeats) with the machine in the header.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

from benchmarks.common import machine_header, markdown_table

BENCHMARKS = {
    "train_step": "Training step (B=10 THUMOS14-shaped batches, C=20)",
    "train_vs_reference": "Training throughput against the official network in PyTorch, same run, paired rounds (D=2048, C=20)",
    "evaluate": "Evaluation and post-processing (THUMOS14 test ground truth)",
    "inference": "Inference latency per video (D=2048, C=20)",
    "test_split": "Whole THUMOS14-shaped test split: forward + localization + evaluation (D=2048, float32)",
}

_CHILD = """
import json, resource, sys
from benchmarks import {name} as b
kwargs = json.loads(sys.argv[1])
rows = b.run(**kwargs)
print("@@ROWS@@" + json.dumps({{"rows": rows, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}, default=str))
"""


def run_child(name: str, kwargs: dict) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(name=name), json.dumps(kwargs)],
                          capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("@@ROWS@@"):
            return json.loads(line[len("@@ROWS@@"):])
    return {"rows": [], "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and configs (a smoke run)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "RESULTS.md"))
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    kwargs = {"train_step": {"repeats": 3 if args.quick else 5, "quick": args.quick},
              "train_vs_reference": {"repeats": 2 if args.quick else 5},
              "evaluate": {"repeats": repeats}, "inference": {"repeats": repeats},
              "test_split": {"repeats": 2 if args.quick else 3}}
    parts = [f"# Benchmarks\n\nRun on {datetime.date.today().isoformat()} with `python -m benchmarks.run"
             f"{' --quick' if args.quick else ''}`.\n\n{machine_header()}\n"]
    for name, title in BENCHMARKS.items():
        print(f"running {name} ...", flush=True)
        res = run_child(name, kwargs[name])
        parts.append(f"\n## {title}\n")
        if res.get("error"):
            parts.append(f"\nfailed: {res['error']}\n")
            continue
        rows = [r for r in res["rows"] if isinstance(r, dict)]
        columns = list(dict.fromkeys(k for r in rows for k in r))
        parts.append(f"\npeak RSS of this benchmark's process: {res['peak_rss_mib']:.0f} MiB\n\n")
        parts.append(markdown_table(rows, columns) + "\n")
    text = "".join(parts)
    with open(args.output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
