"""The PyTorch baseline of benchmarks.train_vs_reference is the same network as ours (official preset),
and the transcription of the official training step (benchmarks.official_reference) behaves as the
official code on hand-made cases.

The torch tests need torch (optional: `pip install torch==2.13.0`) and are skipped without it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from benchmarks.official_reference import induced_pairing, official_pairing_indices

D, C = 16, 5


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_official_pairing_indices_hand_made_case():
    # pi: cycles (0 1 2 3) and (4 5), 6 fixed. FG = [0, 2, 4, 6], BG = [1, 2, 6].
    pi = np.array([1, 2, 3, 0, 5, 4, 6])
    fg, bg = [0, 2, 4, 6], [1, 2, 6]
    # 0 -> 1 -> 2 (FG: position 1); 2 -> 3 -> 0 (position 0); 4 -> 5 -> 4 (itself, 2); 6 -> 6 (itself, 3)
    np.testing.assert_array_equal(induced_pairing(pi, fg), [1, 0, 2, 3])
    out = official_pairing_indices(pi, fg, bg)
    np.testing.assert_array_equal(out["fg_randidx"], [1, 0, 2, 3])
    # BG: 1 -> 2 (position 1); 2 -> 3 -> 0 -> 1 (position 0); 6 -> itself (2)
    np.testing.assert_array_equal(out["bg_randidx"], [1, 0, 2])
    # m = 3: FG[0] = 0 -> 1 (BG position 0); FG[1] = 2 -> 3 -> 0 -> 1 (0, a repeat: 0 has no
    # background); FG[2] = 4 -> 5 -> 4: no background on its cycle, falls back to BG position 0
    np.testing.assert_array_equal(out["fg_idx"], [0, 1, 2])
    np.testing.assert_array_equal(out["bg_idx"], [0, 0, 0])
    np.testing.assert_array_equal(out["bg_fallback"], [2])
    # the induced pairing of a permutation is a permutation of the subset
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.permutation(9)
        sub = sorted(rng.choice(9, size=rng.integers(1, 9), replace=False).tolist())
        assert sorted(induced_pairing(p, sub).tolist()) == list(range(len(sub)))
    with pytest.raises(ValueError, match="permutation"):
        official_pairing_indices([0, 0, 1], [0], [1])


def test_reference_network_equals_d2net_official_preset(torch):
    from benchmarks.official_reference import build
    from d2net_tf.config import preset
    from d2net_tf.modeling import build_network

    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = D, C
    ours = build_network(cfg.model, cfg.loss.topk_divisor)
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


def test_reference_step_trains(torch):
    from benchmarks.official_reference import build, make_step

    ref, opt = build(D, C, seed=0)
    step = make_step(ref, opt)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((3, 12, D)).astype("float32"))
    lengths = torch.tensor([12.0, 7.0, 3.0])
    labels = torch.from_numpy(np.eye(C, dtype="float32")[[0, 2, 4]])
    before = [p.detach().clone() for p in ref.parameters()]
    loss = step(x, lengths, labels)
    assert np.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, ref.parameters()))


def _official(torch, n_feature=D, n_class=C, batch_size=3, **kw):
    from benchmarks.official_reference import official_args, official_model, official_optimizer

    args = official_args(batch_size=batch_size, **kw)
    model = official_model(n_feature, n_class, args)
    return args, model, official_optimizer(model, args)


def test_transcription_skips_a_step_without_valid_video(torch):
    from benchmarks.official_reference import train

    args, model, opt = _official(torch)
    x = np.random.default_rng(0).standard_normal((3, 8, D)).astype("float32")
    x[2, 3:] = 0.0  # 3 snippets: invalid
    labels = np.zeros((3, C), np.float32)
    labels[2, 1] = 1.0  # the only labelled video is too short
    before = [p.detach().clone() for p in model.parameters()]
    out = train(0, x, labels, args, model, opt, np.array([1, 2, 0]))
    assert out["stepped"] is False and out["total"] == 0.0 and out["stats"]["num_valid"] == 0
    np.testing.assert_array_equal(out["seq_len"], [8, 8, 3])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not opt.state  # Adam never stepped
    np.testing.assert_array_equal(out["running_bg"], 0.0)


def test_transcription_separation_row_shift_and_pairing(torch):
    """DISLOSS on hand-made TCAMs equals the official formula recomputed in numpy, with the
    official row-index bug: the separation weight of the j-th foreground video lands on row j."""
    from benchmarks.official_reference import DISLOSS

    rng = np.random.default_rng(3)
    t, d, c = 6, 4, 3
    tcam = (0.2 + 0.05 * rng.random((3, t, c))).astype(np.float32)  # no ties in the most-background snippet
    tcam[1, :2, 0] = 0.9  # video 1: foreground at 0-1, background elsewhere
    tcam[2, :, 1] = 0.7  # video 2: foreground only
    # video 0: background only (no foreground)
    feats = rng.standard_normal((3, t, d)).astype(np.float32)
    labels = np.eye(c, dtype=np.float32)[[0, 0, 1]]
    pi = np.array([2, 0, 1])  # cycle 0 -> 2 -> 1 -> 0
    seq_len = np.array([t, t, t])
    lossv, dmi, bg_mean, st = DISLOSS(torch.from_numpy(tcam), torch.from_numpy(feats), seq_len, 3,
                                      torch.from_numpy(labels), "cpu", bg_mean=torch.zeros(1, d), gamma=0.01, pi=pi)
    assert st["fg_videos"] == [1, 2] and st["bg_videos"] == [0, 1]

    def cos(a, b):
        return float(a @ b / np.sqrt((a @ a + 1e-12) * (b @ b + 1e-12)))

    lam = tcam.max(2)
    w_fg = np.where(lam >= 0.5, lam, 0)
    w_bg = np.where(1 - lam >= 0.5, 1 - lam, 0)
    x_fg = {i: (w_fg[i] @ feats[i]) / w_fg[i].sum() for i in (1, 2)}
    x_bg = {i: (w_bg[i] @ feats[i]) / w_bg[i].sum() for i in (0, 1)}
    wt = np.zeros((3, 3))
    # FG [1, 2]: 1 -> 0 -> 2 (partner 2); 2 -> 1. BG [0, 1]: 0 -> 2 -> 1; 1 -> 0.
    wt[1, 0], wt[2, 0] = 1 - cos(x_fg[1], x_fg[2]), 1 - cos(x_fg[2], x_fg[1])
    wt[0, 1], wt[1, 1] = 1 - cos(x_bg[0], x_bg[1]), 1 - cos(x_bg[1], x_bg[0])
    # separation, m = 2: FG[0] = 1 -> 0 (BG); FG[1] = 2 -> 1 (BG); rows 0 and 1 (the bug)
    wt[0, 2], wt[1, 2] = max(0.0, cos(x_fg[1], x_bg[0])), max(0.0, cos(x_fg[2], x_bg[1]))
    k = np.ceil(t / 8).astype(int)
    p = np.clip(np.sort(tcam, axis=1)[:, ::-1][:, :k].mean(1), 1e-3, 1 - 1e-3)
    per = -((1 - p + wt[:, [2]] + 0.01 * wt[:, [0]]) ** 2 * labels * np.log(p)
            + (p + wt[:, [2]] + 0.01 * wt[:, [1]]) ** 2 * (1 - labels) * np.log(1 - p))
    per = per * np.where(labels > 0, c, 1)
    np.testing.assert_allclose(float(lossv), per.mean(), rtol=1e-5)
    top = [int(np.argmax(1 - lam[i])) for i in (0, 1)]
    np.testing.assert_allclose(bg_mean.numpy()[0], 0.1 * np.mean([feats[i, top[j]] for j, i in enumerate((0, 1))], 0),
                               rtol=1e-5)
