"""The video-level class score of D2-Net: the top-k mean of the TCAM over time (Sec. 3.1, 3.3).

One formula, used by the classification loss (through `p`), by the numpy
localization, by its TF graph twin and by inference:

    k   = max(1, ceil(s / topk_divisor))          s = the video's number of snippets
    p_c = mean of the k largest values of T[:, c]

`topk_divisor` is a float (> 0): 8 in the paper and the official THUMOS14 code,
4 in the official ActivityNet1.2 code (`np.ceil(seq_len / 8)` there: a float
division, so a divisor such as 8.5 is meaningful and must not be truncated).

The numpy functions count in float64, the TF ones in float32 (TPUs have no
float64; the loss runs there). The two counts agree unless `s / topk_divisor`
lies within float32 rounding of an integer without being one, which no
divisor with a short binary expansion (8, 4, 8.5, ...) can produce.

TensorFlow is imported inside the TF functions only: the numpy localization and the
evaluation use this module and must stay importable without TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np


def topk_count(num_snippets: int, divisor: float) -> int:
    """k = max(1, ceil(s / divisor)) for a video of `num_snippets` snippets."""
    return max(1, math.ceil(num_snippets / divisor))


def topk_mean(tcam: np.ndarray, divisor: float) -> np.ndarray:
    """Video scores p of one video: mean of the top-k values of each class over time.

    Args:
      tcam: [s, C] array, s >= 1.
      divisor: float > 0, `k = topk_count(s, divisor)`.
    Returns:
      [C] array in tcam's float dtype.
    """
    k = topk_count(tcam.shape[0], divisor)
    return -np.partition(-tcam, k - 1, axis=0)[:k].mean(axis=0)


def topk_count_tf(num_snippets, divisor: float):
    """`topk_count` with TF ops: k per element of `num_snippets` (any shape), int32."""
    import tensorflow as tf

    s = tf.cast(num_snippets, tf.float32)
    return tf.maximum(tf.cast(tf.math.ceil(s / divisor), tf.int32), 1)


def topk_mean_tf(tcam, divisor: float):
    """`topk_mean` with TF ops for one video: [s, C] -> [C] in tcam's dtype (s = 0 gives zeros)."""
    import tensorflow as tf

    s = tf.shape(tcam)[0]
    k = tf.minimum(topk_count_tf(s, divisor), s)
    top = tf.math.top_k(tf.transpose(tcam), k=k, sorted=False).values  # [C, k]
    return tf.reduce_sum(top, axis=1) / tf.cast(tf.maximum(k, 1), tcam.dtype)


def video_scores_tf(tcam, mask, divisor: float = 8.0):
    """Video scores p of a padded batch: the top-k mean over each video's valid snippets.

    Args:
      tcam: [B, T, C] TCAM (cast to float32).
      mask: [B, T], 1 = real snippet; s = the row sum.
      divisor: float > 0.
    Returns:
      [B, C] float32.
    """
    import tensorflow as tf

    tcam = tf.cast(tcam, tf.float32)
    k = topk_count_tf(tf.reduce_sum(tf.cast(mask, tf.float32), axis=1), divisor)  # [B]
    valid = tf.cast(mask, tf.bool)[:, :, None]
    # The largest k_max = max_b k_b values per (video, class), not a full sort over time
    # (T/8 of the work and of the gradient's scatter).
    scores = tf.transpose(tf.where(valid, tcam, -1.0), [0, 2, 1])  # [B, C, T]
    ranked = tf.math.top_k(scores, k=tf.reduce_max(k), sorted=True).values  # [B, C, k_max]
    rank = tf.range(tf.shape(ranked)[2])[None, None, :]
    take = tf.cast(rank < k[:, None, None], tf.float32)
    return tf.reduce_sum(ranked * take, axis=2) / tf.cast(k, tf.float32)[:, None]
