"""The PyTorch baseline of benchmarks.train_vs_reference is the same network as ours (official preset).

Needs torch (optional: `pip install torch==2.13.0`); skipped without it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.official_reference import build, make_step  # noqa: E402
from d2net_tf.config import preset  # noqa: E402
from d2net_tf.model import build_model  # noqa: E402

D, C = 16, 5


def test_reference_network_equals_d2net_official_preset():
    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = D, C
    ours = build_model(cfg.model, cfg.loss)
    ref, _ = build(D, C, seed=0)
    for stream, ref_stream in ((ours.rgb_stream, ref.rgb), (ours.flow_stream, ref.flow)):
        for layer, conv in ((stream.conv1, ref_stream.conv1), (stream.conv2, ref_stream.conv2),
                            (stream.classifier, ref_stream.classifier)):
            # ours [k, in, out] (TemporalConv), torch [out, in, k] (Conv1d)
            layer.kernel.assign(np.transpose(conv.weight.detach().numpy(), (2, 1, 0)))
            layer.bias.assign(conv.bias.detach().numpy())
    x = np.random.default_rng(0).standard_normal((2, 9, D)).astype("float32")
    ref.eval()
    with torch.no_grad():
        tcam, emb = ref(torch.from_numpy(x))
    out = ours(x, training=False)
    np.testing.assert_allclose(out["tcam"], tcam.numpy(), atol=1e-6)
    np.testing.assert_allclose(out["embeddings"], emb.numpy(), atol=1e-5)


def test_reference_step_trains():
    ref, opt = build(D, C, seed=0)
    step = make_step(ref, opt)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((3, 12, D)).astype("float32"))
    lengths = torch.tensor([12.0, 7.0, 3.0])
    labels = torch.from_numpy(np.eye(C, dtype="float32")[[0, 2, 4]])
    before = [p.detach().clone() for p in ref.parameters()]
    loss = step(x, lengths, labels)
    assert np.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, ref.parameters()))
