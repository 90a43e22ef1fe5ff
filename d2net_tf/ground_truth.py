"""W-TALC annotations -> ActivityNet-style ground-truth JSON (command line).

    python -m d2net_tf.ground_truth --annotations DIR --subset test --output gt.json

The conversion is `d2net_tf.data.wtalc.write_ground_truth` (layout: `data.ground_truth_json`).
Segments with end <= start (ten in ActivityNet1.2) cannot be written as valid
ActivityNet segments and are skipped, with a warning on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from d2net_tf.cli import run_cli
from d2net_tf.data.wtalc import write_ground_truth


@run_cli
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", required=True, help="W-TALC {DATASET}-Annotations folder")
    parser.add_argument("--subset", default=None, help="e.g. test / validation (default: all videos)")
    parser.add_argument("--output", required=True, help="output JSON path")
    args = parser.parse_args(argv)
    payload = write_ground_truth(args.annotations, args.output, args.subset)
    db = payload["database"]
    n_seg = sum(len(v["annotations"]) for v in db.values())
    print(f"wrote {args.output}: {len(db)} videos, {n_seg} segments, {len(payload['classlist'])} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
