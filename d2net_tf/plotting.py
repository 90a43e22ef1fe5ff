"""Fig. 5-style plot of one video: TCAM of the detected classes, attention, detections and ground truth."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from d2net_tf.errors import D2NetInputError
from d2net_tf.localization import Detections


def plot_tcam(
    path: str,
    tcam: np.ndarray,
    attention: np.ndarray,
    detections: Detections,
    classlist: Sequence[str],
    snippets_per_second: float,
    ground_truth=None,
    class_ids: Sequence[int] | None = None,
) -> str:
    """Writes a PNG with, on a time axis in seconds: the TCAM curve of each class,
    the bottom-up attention lambda', the detections (bars, one row per class, shaded by
    score) and the ground truth (bars), like Fig. 5 of the paper.

    Args:
      path: output image path (format from the extension, e.g. .png).
      tcam: [s, C] TCAM of the video.
      attention: [s] bottom-up attention lambda'.
      detections: Detections of this video (seconds).
      classlist: class names.
      snippets_per_second: feature rate; snippet i is drawn at [i, i+1) / sps seconds.
      ground_truth: optional (class_ids, starts, ends) triple or an object with those
        attributes (e.g. a GroundTruth already restricted to this video).
      class_ids: classes to draw; default = the detected classes plus the ground-truth classes.
    Returns:
      `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tcam = np.asarray(tcam, np.float64)
    attention = np.asarray(attention, np.float64).reshape(-1)
    if tcam.ndim != 2 or attention.shape[0] != tcam.shape[0]:
        raise D2NetInputError(
            f"plot_tcam: expected tcam [s, C] and attention [s], got {tcam.shape} and {attention.shape}"
        )
    if ground_truth is not None and not isinstance(ground_truth, tuple):
        ground_truth = (ground_truth.class_ids, ground_truth.starts, ground_truth.ends)
    if class_ids is None:
        ids = set(np.asarray(detections.class_ids).tolist())
        if ground_truth is not None:
            ids |= set(np.asarray(ground_truth[0]).tolist())
        class_ids = sorted(ids) or [int(np.argmax(tcam.max(axis=0)))]
    class_ids = [int(c) for c in class_ids]

    s = tcam.shape[0]
    edges = np.arange(s + 1) / snippets_per_second
    duration = s / snippets_per_second
    n = len(class_ids)
    fig, axes = plt.subplots(
        2, 1, figsize=(10, 3 + 0.5 * n), sharex=True, gridspec_kw={"height_ratios": [3, 1 + 0.5 * n]}
    )
    ax, bars = axes
    colors = plt.cm.tab10(np.arange(n) % 10)
    for color, c in zip(colors, class_ids):
        ax.stairs(tcam[:, c], edges, color=color, label=f"TCAM {classlist[c]}")
    ax.stairs(attention, edges, color="black", linestyle="--", label="attention $\\lambda'$")
    ax.set_ylim(0, max(1.05, float(attention.max()) * 1.05 if attention.size else 1.05))
    ax.set_ylabel("activation")
    ax.legend(loc="upper right", fontsize="small")

    max_score = float(np.max(detections.scores)) if len(detections) else 1.0
    for row, (color, c) in enumerate(zip(colors, class_ids)):
        y = 2 * row
        sel = np.asarray(detections.class_ids) == c
        for st, en, sc in zip(detections.starts[sel], detections.ends[sel], detections.scores[sel]):
            alpha = 0.3 + 0.7 * max(0.0, sc) / max_score if max_score > 0 else 1.0
            bars.broken_barh([(st, en - st)], (y + 1, 0.8), color=color, alpha=min(1.0, alpha))
        if ground_truth is not None:
            gsel = np.asarray(ground_truth[0]) == c
            spans = [(a, b - a) for a, b in zip(np.asarray(ground_truth[1])[gsel], np.asarray(ground_truth[2])[gsel])]
            bars.broken_barh(spans, (y, 0.8), color="gray")
    bars.set_yticks([2 * r + 0.9 for r in range(n)], [classlist[c] for c in class_ids], fontsize="small")
    bars.set_ylim(-0.2, 2 * n)
    bars.set_xlim(0, duration)
    bars.set_xlabel("time (s)")
    bars.set_title("detections (upper bars) / ground truth (gray, lower bars)", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
