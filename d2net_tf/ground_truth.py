"""W-TALC annotations -> ActivityNet-style ground-truth JSON.

    python -m d2net_tf.ground_truth --annotations DIR --subset test --output gt.json

The JSON is `{"version", "taxonomy": [], "classlist", "snippets_per_second",
"database": {vid: {"subset", "duration", "annotations": [{"label", "segment"}],
"ambiguous": [[s, e], ...]}}}`: the ActivityNet layout plus three extensions read
back by `evaluation.load_ground_truth_json` (the W-TALC class order, the feature
rate and the THUMOS14 Ambiguous segments). Segments with end <= start (ten in
ActivityNet1.2) cannot be written as valid ActivityNet segments and are skipped,
with a warning on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from d2net_tf.cli import run_cli
from d2net_tf.data.wtalc import write_ground_truth
from d2net_tf.evaluation import (
    TEST_GT_SEGMENTS_FILE,
    GroundTruth,
    ground_truth_from_test_gt_segments,
    read_test_gt_segments,
)


def load_wtalc_ground_truth(annotation_dir: str, subset: str | Sequence[str] | None = None) -> GroundTruth:
    """GroundTruth of `subset` of a W-TALC annotation folder (all videos when None)."""
    from d2net_tf.data.wtalc import load_wtalc_annotations  # lazy: data package is optional here

    return GroundTruth.from_dataset(load_wtalc_annotations(annotation_dir), subset)


def load_wtalc_test_gt_segments(
    annotation_dir: str, subset: str = "test", path: str | None = None
) -> GroundTruth:
    """The official D2-Net THUMOS14 W-TALC ground truth (test_gt_segments.npy) of a W-TALC annotation folder.

    Videos, durations and Ambiguous segments come from `annotation_dir` (its `subset`
    videos); the instances from `path`, default `annotation_dir`/test_gt_segments.npy
    when that file exists, else the vendored THUMOS14 copy (the official code always
    reads its own copy, whatever the annotation path). The embedded synthetic
    `thumos14` data copies the real annotation folder, so it applies there; the
    `tiny` synthetic set (4 rescaled test videos) raises D2NetInputError.
    """
    if path is None:
        local = os.path.join(annotation_dir, TEST_GT_SEGMENTS_FILE)
        path = local if os.path.exists(local) else None
    base = load_wtalc_ground_truth(annotation_dir, subset)
    return ground_truth_from_test_gt_segments(base, read_test_gt_segments(path), path or TEST_GT_SEGMENTS_FILE)


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
