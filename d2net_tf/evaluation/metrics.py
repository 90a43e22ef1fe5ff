"""Average precision of ranked detections (ActivityNet's interpolated AP, W-TALC's AP) and
video-level classification mAP."""

from __future__ import annotations

import numpy as np

from d2net_tf.errors import D2NetInputError


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """VOC-2011 interpolated AP, exactly ActivityNet's `interpolated_prec_rec`."""
    mprec = np.concatenate([[0.0], np.asarray(prec, np.float64), [0.0]])
    mrec = np.concatenate([[0.0], np.asarray(rec, np.float64), [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def interpolated_ap_rows(tp: np.ndarray, npos: int) -> np.ndarray:
    """Interpolated AP of each row of `tp` [T, n] (predictions already sorted)."""
    out = np.zeros(tp.shape[0])
    if npos == 0 or tp.shape[1] == 0:
        return out
    tp_c = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_c = np.cumsum(1.0 - tp, axis=1)
    rec = tp_c / npos
    prec = tp_c / (tp_c + fp_c)
    for i in range(tp.shape[0]):
        out[i] = interpolated_prec_rec(prec[i], rec[i])
    return out


def wtalc_ap_rows(tp: np.ndarray, npos: int) -> np.ndarray:
    """W-TALC AP: sum(precision at each TP) / npos; 0 without any TP."""
    out = np.zeros(tp.shape[0])
    if npos == 0 or tp.shape[1] == 0:
        return out
    tp_c = np.cumsum(tp, axis=1, dtype=np.float64)
    prec = tp_c / np.arange(1, tp.shape[1] + 1)
    return np.sum(prec * tp, axis=1) / npos


def classification_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """Video-level classification mAP.

    Per class, videos sorted by descending score (stable); AP = mean precision at
    the positives; mean over the classes with at least one positive.

    Args:
      scores: [N, C] float.
      labels: [N, C] multi-hot (nonzero = positive).
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels) > 0
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise D2NetInputError(
            f"classification_map: scores and labels must both be [N, C], got {scores.shape} and {labels.shape}"
        )
    if not np.isfinite(scores).all():
        raise D2NetInputError("classification_map: scores contain NaN/inf")
    order = np.argsort(-scores, axis=0, kind="stable")
    tp = np.take_along_axis(labels, order, axis=0).astype(np.float64)
    npos = tp.sum(axis=0)
    prec = np.cumsum(tp, axis=0) / np.arange(1, scores.shape[0] + 1)[:, None]
    valid = npos > 0
    if not valid.any():
        return float("nan")
    ap = (prec * tp).sum(axis=0)[valid] / npos[valid]
    return float(ap.mean())
