"""Whole-video inference over packed sequences equals each video run alone."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from d2net_tf.config import preset
from d2net_tf.data.dataset import VideoDataset
from d2net_tf.inference import predict_videos
from d2net_tf.modeling import build_network


def _dataset(lengths, d, c, seed=0):
    rng = np.random.default_rng(seed)
    n = len(lengths)
    return VideoDataset(
        name="toy", classlist=[f"c{i}" for i in range(c)], video_ids=np.array([f"v{i}" for i in range(n)]),
        subsets=np.array(["test"] * n), labels=np.eye(c, dtype=np.float32)[rng.integers(0, c, n)],
        segments=[np.zeros((0, 2))] * n, segment_labels=[np.zeros(0, np.int32)] * n,
        durations=np.array(lengths) / 1.5625, features=[rng.random((t, d), dtype=np.float32) for t in lengths],
    )


@pytest.mark.parametrize("conv_algorithm", ["direct", "winograd"])
@pytest.mark.parametrize("kernel,dilation,max_snippets", [(3, 1, 40), (5, 2, 40), (3, 1, 10_000)])
def test_packed_inference_equals_videos_alone(kernel, dilation, max_snippets, conv_algorithm):
    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = 16, 4
    cfg.model.kernel_size, cfg.model.dilation, cfg.model.init = kernel, dilation, "glorot"
    model = build_network(cfg.model, cfg.loss.topk_divisor)
    model.x_ref.assign(np.linspace(0.1, 1.0, 8).astype("float32"))
    ds = _dataset([5, 17, 3, 33, 12, 60], 16, 4)  # the 60-snippet video exceeds max_snippets=40
    seen = []
    for vid, tcam, att, p in predict_videos(model, ds, max_snippets=max_snippets, conv_algorithm=conv_algorithm):
        i = int(vid[1:])
        seen.append(i)
        alone = model(ds.features[i][None], training=False)
        np.testing.assert_allclose(tcam, alone["tcam"][0], atol=1e-5)
        np.testing.assert_allclose(att, alone["attention"][0], atol=1e-5)
        np.testing.assert_allclose(p, alone["video_scores"][0], atol=1e-5)
    assert sorted(seen) == list(range(6))


def test_compiled_forward_is_one_function_per_model_that_follows_its_weights_and_dies_with_it():
    import gc

    from d2net_tf.inference import _FORWARDS, compiled_forward

    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes, cfg.model.init = 16, 4, "glorot"
    model = build_network(cfg.model, cfg.loss.topk_divisor)
    forward = compiled_forward(model, packed=True)
    assert compiled_forward(model, packed=True) is forward
    assert compiled_forward(model) is not forward
    assert set(forward(np.ones((1, 9, 16), np.float32), np.ones((1, 9), np.float32))) == {"tcam", "attention"}
    x = np.random.default_rng(1).random((1, 9, 16), dtype=np.float32)
    mask = np.ones((1, 9), np.float32)
    other = build_network(cfg.model, cfg.loss.topk_divisor)
    model.set_weights(other.get_weights())  # after the first trace: the cached graph reads the new weights
    np.testing.assert_allclose(forward(x, mask)["tcam"], other(x, training=False)["tcam"], atol=1e-6)
    keys = {(id(model), True, "direct"), (id(model), False, "direct")}
    assert keys <= set(_FORWARDS)
    del model, forward
    gc.collect()
    assert not keys & set(_FORWARDS)
