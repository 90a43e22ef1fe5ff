"""The Markdown results table of an evaluation result dict."""

from __future__ import annotations

from typing import Any


def format_results_table(result: dict[str, Any]) -> str:
    """A Markdown table of mAP (%) per tIoU threshold plus averages, with the protocol stated."""
    thr = result["tiou_thresholds"]
    head = ["tIoU"] + [f"{t:g}" for t in thr] + ["avg"]
    vals = ["mAP (%)"] + [f"{100 * m:.2f}" for m in result["mAP"]] + [f"{100 * result['average_mAP']:.2f}"]
    lines = [
        f"protocol: {result['protocol']} | ambiguous removed: {result['ambiguous_removed']} | "
        f"videos: {result['num_videos']} | ground truth: {result.get('num_ground_truth', '?')} | "
        f"predictions: {result['num_predictions']}"
        + (
            f" | wtalc ground truth: {result['wtalc_ground_truth']} | AP: {result['wtalc_ap']} | "
            f"class-counter bug: {result['wtalc_class_counter_bug']}"
            if "wtalc_ground_truth" in result
            else ""
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        "| " + " | ".join(vals) + " |",
        "",
    ]
    for key in ("average_mAP_0.1_0.5", "average_mAP_0.1_0.7"):
        if key in result:
            lines.append(f"{key}: {100 * result[key]:.2f}")
    lines.append(
        f"F1@0.5: {100 * result['f1_at_0.5']:.2f} (precision {100 * result['precision_at_0.5']:.2f}, "
        f"recall {100 * result['recall_at_0.5']:.2f})"
    )
    return "\n".join(lines)
