"""The one top-k video score (d2net_tf.scores): numpy, single-video TF and batched TF agree."""

import numpy as np
import pytest
import tensorflow as tf

from d2net_tf import scores


@pytest.mark.parametrize("s,divisor,k", [(1, 8.0, 1), (8, 8.0, 1), (9, 8.0, 2), (17, 8.5, 2), (18, 8.5, 3), (5, 4, 2)])
def test_topk_count(s, divisor, k):
    assert scores.topk_count(s, divisor) == k
    assert int(scores.topk_count_tf(tf.constant(s), divisor).numpy()) == k


@pytest.mark.parametrize("divisor", [8.0, 8.5, 4.0, 1.0])
def test_numpy_and_tf_agree(divisor):
    rng = np.random.default_rng(0)
    lengths = [1, 7, 18, 40]
    tcam = rng.random((len(lengths), 40, 3)).astype(np.float32)
    mask = (np.arange(40)[None] < np.array(lengths)[:, None]).astype(np.float32)
    batched = scores.video_scores_tf(tf.constant(tcam), tf.constant(mask), divisor).numpy()
    for b, s in enumerate(lengths):
        video = tcam[b, :s].astype(np.float64)
        k = scores.topk_count(s, divisor)
        expected = np.sort(video, axis=0)[::-1][:k].mean(axis=0)
        np.testing.assert_allclose(scores.topk_mean(video, divisor), expected, rtol=1e-12)
        np.testing.assert_allclose(scores.topk_mean_tf(tf.constant(video), divisor).numpy(), expected, rtol=1e-12)
        np.testing.assert_allclose(batched[b], expected, rtol=1e-5)


def test_topk_mean_tf_empty_video():
    out = scores.topk_mean_tf(tf.zeros([0, 3], tf.float64), 8.0)
    np.testing.assert_array_equal(out.numpy(), np.zeros(3))
