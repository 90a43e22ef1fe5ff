"""Tests for d2net_tf.losses against an independent numpy implementation (Eq. 1-11).

The numpy reference below is written from the paper's equations, with explicit Python
loops over videos and explicit P / Y matrices; it never calls the TF code.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from d2net_tf import losses as L
from d2net_tf.config import LOSS_VARIANTS, LossConfig, preset
from d2net_tf.scores import topk_count_tf, video_scores_tf

B, T, D, C = 4, 9, 6, 5
LENGTHS = (9, 7, 4, 8)  # video 2 has < 5 valid snippets (skipped in L_Dis by the official preset)
PERM = np.array([2, 0, 3, 1], np.int32)  # a fixed derangement

PRESETS = [("paper", "thumos14"), ("official", "thumos14"), ("official", "activitynet12")]
PRESET_IDS = ["paper", "official", "official-anet"]


def loss_cfg(name, dataset, **overrides):
    return dataclasses.replace(preset(name, dataset).loss, **overrides)


# --------------------------------------------------------------------------------------------
# Independent numpy reference
# --------------------------------------------------------------------------------------------


def np_cos(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    na = a / np.sqrt(max(np.sum(a * a), 1e-12))
    nb = b / np.sqrt(max(np.sum(b * b), 1e-12))
    return float(np.sum(na * nb))


def np_video_scores(tcam, mask, divisor):
    p = np.zeros((tcam.shape[0], tcam.shape[2]))
    for b in range(tcam.shape[0]):
        vals = tcam[b][mask[b] > 0].astype(np.float64)  # [s, C]
        s = vals.shape[0]
        k = max(int(math.ceil(s / divisor)), 1)
        top = -np.sort(-vals, axis=0)[:k]
        p[b] = top.mean(0)
    return p


def np_fg_bg(x, tcam, mask, cfg):
    xf = np.zeros((x.shape[0], x.shape[2]))
    xb = np.zeros_like(xf)
    has_fg = np.zeros(x.shape[0], bool)
    has_bg = np.zeros(x.shape[0], bool)
    for b in range(x.shape[0]):
        sf = np.zeros(x.shape[2])
        sb = np.zeros(x.shape[2])
        wf_sum = wb_sum = 0.0
        for t in range(x.shape[1]):
            if mask[b, t] <= 0:
                continue
            lam = float(np.max(tcam[b, t]))
            above = (lambda v, thr: v >= thr) if cfg.inclusive_thresholds else (lambda v, thr: v > thr)
            if above(lam, cfg.fg_threshold):
                sf += lam * x[b, t]
                wf_sum += lam
            if above(1.0 - lam, cfg.bg_threshold):
                sb += (1.0 - lam) * x[b, t]
                wb_sum += 1.0 - lam
        if cfg.weighted_mean_embeddings:
            sf = sf / wf_sum if wf_sum > 0 else sf
            sb = sb / wb_sum if wb_sum > 0 else sb
        xf[b], xb[b] = sf, sb
        has_fg[b], has_bg[b] = wf_sum > 0, wb_sum > 0
    return xf, xb, has_fg, has_bg


def np_pair_weights(xf, xb, perm, gamma):
    n = xf.shape[0]
    w_fb = np.array([max(0.0, np_cos(xf[i], xb[perm[i]])) for i in range(n)])
    w_fg = np.array([gamma * (1.0 - np_cos(xf[i], xf[perm[i]])) for i in range(n)])
    w_bg = np.array([gamma * (1.0 - np_cos(xb[i], xb[perm[i]])) for i in range(n)])
    return w_fb, w_fg, w_bg


def np_first_member(perm, start, members):
    """First video of `members` reached from `start` by following perm (perm[start], ...)."""
    cur = perm[start]
    for _ in range(len(perm)):
        if cur in members:
            return cur
        cur = perm[cur]
    return members[0] if members else None  # none on the cycle: the first member in batch order


def np_subset_pair_weights(xf, xb, has_fg, has_bg, rows, perm, cfg):
    """Eq. 3 as the official DISLOSS pairs: lists of the (counting) videos with fg / bg."""
    n = xf.shape[0]
    row_list = [i for i in range(n) if rows[i]]
    fg_list = [i for i in row_list if has_fg[i]]
    bg_list = [i for i in row_list if has_bg[i]]
    w_fb, w_fg, w_bg = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in fg_list:
        w_fg[i] = cfg.gamma * (1.0 - np_cos(xf[i], xf[np_first_member(perm, i, fg_list)]))
    for i in bg_list:
        w_bg[i] = cfg.gamma * (1.0 - np_cos(xb[i], xb[np_first_member(perm, i, bg_list)]))
    for j in range(min(len(fg_list), len(bg_list))):
        i = fg_list[j]
        value = max(0.0, np_cos(xf[i], xb[np_first_member(perm, i, bg_list)]))
        w_fb[row_list[j] if cfg.separation_row_shift else i] = value
    return w_fb, w_fg, w_bg


def np_valid(mask, labels, cfg):
    return np.array(
        [float(mask[b].sum() >= cfg.min_valid_snippets and labels[b].sum() > 0) for b in range(mask.shape[0])]
    )


def np_dis(p, labels, w_fb, w_fg, w_bg, valid, cfg, beta):
    n, c = p.shape
    per_video = []
    for i in range(n):
        terms = []
        for j in range(c):
            q = min(max(p[i, j], cfg.clip_eps), 1.0 - cfg.clip_eps)
            if labels[i, j] > 0:
                w = c if cfg.positive_weight_num_classes else 1.0
                terms.append(-w * (1.0 - q + w_fg[i] + w_fb[i]) ** beta * math.log(q))
            else:
                terms.append(-((q + w_bg[i] + w_fb[i]) ** beta) * math.log(1.0 - q))
        per_video.append(np.mean(terms) if cfg.mean_over_classes else np.sum(terms))
    per_video = np.array(per_video)
    return float(np.sum(per_video * valid) / max(valid.sum(), 1.0))


def np_pdmi(u, tol=1e-5, relative=False):
    """(loss, ok): log(sigma_1 / sigma_r) over the singular values above the cut-off (absolute
    or x sigma_1); 0, False if dropped (not finite, zero, or fewer than two above the cut-off)."""
    u = np.asarray(u, np.float64)
    if not np.all(np.isfinite(u)):
        return 0.0, False
    s = np.linalg.svd(u, compute_uv=False)
    nz = s[s > (tol * s[0] if relative else tol)]
    if s[0] <= 1e-12 or len(nz) < 2:
        return 0.0, False
    return float(np.log(s[0] / nz.min())), True


def np_bottom_up(x, x_ref):
    out = np.zeros(x.shape[:2])
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            out[b, t] = 0.5 * (1.0 - np_cos(x[b, t], x_ref))
    return out


def np_u1(tcam, labels, att, mask, cfg):
    """Eq. 9 with explicit P1 (2 x z) and Y1 (z x 2) per video. [B, 2, 2]."""
    us = []
    for b in range(tcam.shape[0]):
        cols, ys = [], []
        fg_idx = [t for t in range(tcam.shape[1]) if mask[b, t] > 0 and att[b, t] > cfg.attention_fg_threshold]
        bg_idx = [t for t in range(tcam.shape[1]) if mask[b, t] > 0 and att[b, t] < cfg.attention_bg_threshold]
        nf, nb = len(fg_idx), len(bg_idx)
        z = nf + nb
        for t in fg_idx:
            if cfg.labelled_class_fg_attention:
                lam = float(np.max(tcam[b, t][labels[b] > 0])) if labels[b].sum() > 0 else 0.0
            else:
                lam = float(np.max(tcam[b, t]))
            cols.append([lam, 1.0 - lam])
            ys.append([1.0 / nf, 0.0] if cfg.count_normalised_y else [1.0 / z, 0.0])
        for t in bg_idx:
            lam = float(np.max(tcam[b, t]))
            cols.append([lam, 1.0 - lam])
            ys.append([0.0, 1.0 / nb] if cfg.count_normalised_y else [0.0, 1.0 / z])
        if z == 0:
            us.append(np.zeros((2, 2)))
            continue
        p1 = np.array(cols).T  # 2 x z
        y1 = np.array(ys)  # z x 2
        us.append(p1 @ y1)
    return np.stack(us)


def np_u2(p, labels, cfg, rows=None):
    """Eq. 10 with explicit P2 (C x n) and Y2 (n x C) over the videos in `rows`."""
    if rows is not None:
        p, labels = p[rows > 0], labels[rows > 0]
    n, c = p.shape
    p2 = np.zeros((c, n))
    for i in range(n):
        pi = p[i].astype(np.float64).copy()
        if cfg.clip_before_video_pdmi:
            pi = np.clip(pi, cfg.clip_eps, 1.0 - cfg.clip_eps)
        if cfg.video_score_floor > 0:
            pi = np.where(pi > cfg.video_score_floor * pi.max(), pi, 0.0)
            pi = pi / pi.sum()
        p2[:, i] = pi
    y2 = np.zeros((n, c))
    for i in range(n):
        for j in range(c):
            if cfg.count_normalised_y:
                cnt = labels[:, j].sum()
                y2[i, j] = labels[i, j] / cnt if cnt > 0 else 0.0
            else:
                y2[i, j] = labels[i, j] / n
    return p2 @ y2


def np_losses(tcam, x, labels, mask, x_ref, perm, cfg, denoise=True):
    """Every term of d2net_losses from the equations (and the official code's rules)."""
    p = np_video_scores(tcam, mask, cfg.topk_divisor)
    xf, xb, has_fg, has_bg = np_fg_bg(x, tcam, mask, cfg)
    valid = np_valid(mask, labels, cfg)
    rows = valid if cfg.exclude_invalid_videos else np.ones_like(valid)
    if cfg.variant in ("ce", "focal"):
        w_fb = w_fg = w_bg = np.zeros(x.shape[0])
    elif cfg.pair_within_subsets:
        w_fb, w_fg, w_bg = np_subset_pair_weights(xf, xb, has_fg, has_bg, rows, perm, cfg)
    else:
        w_fb, w_fg, w_bg = np_pair_weights(xf, xb, perm, cfg.gamma)
    beta = 0.0 if cfg.variant == "ce" else cfg.beta
    dis = np_dis(p, labels, w_fb, w_fg, w_bg, valid, cfg, beta)
    # x_ref EMA (Eq. 8).
    if cfg.xref_source == "most_background_snippet":
        embs = []
        for b in range(x.shape[0]):
            valid_t = [t for t in range(x.shape[1]) if mask[b, t] > 0]
            t_star = max(valid_t, key=lambda t: 1.0 - float(np.max(tcam[b, t])))
            embs.append(x[b, t_star])
        embs = np.array(embs)
    else:
        embs = xb
    src = [b for b in range(x.shape[0]) if rows[b] and (has_bg[b] or not cfg.xref_from_videos_with_background)]
    new_ref = x_ref.astype(np.float64)
    if src:
        new_ref = cfg.xref_momentum * new_ref + (1 - cfg.xref_momentum) * embs[src].mean(0)
    ref = new_ref if cfg.snippet_uses_updated_xref else x_ref
    snippet = video = 0.0
    dropped = 0
    if cfg.variant.startswith("d2net"):
        att = np_bottom_up(x, ref)
        if cfg.variant == "d2net":
            u1 = np_u1(tcam, labels, att, mask, cfg)
            losses, count = [], 0
            for b in range(x.shape[0]):
                n_f = sum(1 for t in range(x.shape[1]) if mask[b, t] > 0 and att[b, t] > cfg.attention_fg_threshold)
                n_b = sum(1 for t in range(x.shape[1]) if mask[b, t] > 0 and att[b, t] < cfg.attention_bg_threshold)
                loss_b, ok_b = np_pdmi(np.maximum(u1[b], 1e-10), cfg.pdmi_snippet_rel_tol, relative=True)
                if rows[b] and n_f > 0 and n_b > 0:
                    losses.append(loss_b)
                    dropped += 0 if ok_b else 1
                elif not cfg.snippet_mean_over_contributing and rows[b]:
                    losses.append(loss_b)
            if cfg.snippet_mean_over_contributing:
                snippet = float(np.sum(losses) / max(1, len(losses)))
            else:
                snippet = float(np.sum(losses) / x.shape[0])
            video, ok2 = np_pdmi(np_u2(p, labels, cfg, rows), cfg.pdmi_video_tol)
            dropped += 0 if ok2 else 1
        else:
            num, cnt = 0.0, 0
            eps = cfg.clip_eps
            for b in range(x.shape[0]):
                if not rows[b]:
                    continue
                for t in range(x.shape[1]):
                    if mask[b, t] <= 0:
                        continue
                    lam = float(np.max(tcam[b, t]))
                    if cfg.labelled_class_fg_attention:
                        lam_f = float(np.max(tcam[b, t] * labels[b]))
                    else:
                        lam_f = lam
                    if att[b, t] > cfg.attention_fg_threshold:
                        num += abs(1.0 - lam_f) if cfg.variant == "d2net_l1" else -math.log(max(lam_f, eps))
                        cnt += 1
                    elif att[b, t] < cfg.attention_bg_threshold:
                        num += abs(lam) if cfg.variant == "d2net_l1" else -math.log(max(1.0 - lam, eps))
                        cnt += 1
            snippet = num / max(cnt, 1)
            pc = np.clip(p, cfg.clip_eps, 1.0 - cfg.clip_eps)[rows > 0]
            y = labels[rows > 0]
            if cfg.variant == "d2net_l1":
                video = float(np.mean(np.abs(pc - y)))
            else:
                video = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))
        if not denoise:
            snippet = video = 0.0
    total = dis + cfg.alpha_snippet * snippet + cfg.alpha_video * video
    return dict(
        loss=total, dis=dis, snippet=snippet, video=video, w_fb=w_fb.mean(), w_fg=w_fg.mean(),
        w_bg=w_bg.mean(), pdmi_dropped=dropped, x_ref=new_ref,
    )


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _margins_ok(tcam, x, mask, x_ref, cfgs, margin=1e-3):
    """No value within `margin` of a threshold (float32 vs float64 could disagree there)."""
    lam = tcam.max(-1)[mask > 0]
    att = np_bottom_up(x, x_ref)[mask > 0]
    for cfg in cfgs:
        for v, thr in ((lam, cfg.fg_threshold), (1 - lam, cfg.bg_threshold), (att, cfg.attention_fg_threshold),
                       (att, cfg.attention_bg_threshold)):
            if np.min(np.abs(v - thr)) < margin:
                return False
    return True


def make_inputs(seed=0, lengths=LENGTHS, t=T):
    cfgs = [loss_cfg(*p) for p in PRESETS]
    for s in range(seed, seed + 1000):
        rng = np.random.default_rng(s)
        mask = np.zeros((B, t), np.float32)
        for b, n in enumerate(lengths):
            mask[b, :n] = 1.0
        tcam = (rng.uniform(0.0, 1.0, (B, t, C)) ** 2).astype(np.float32) * mask[..., None]
        x = rng.normal(size=(B, t, D)).astype(np.float32) * mask[..., None]
        labels = np.zeros((B, C), np.float32)
        for b in range(B):
            labels[b, rng.choice(C, size=1 + b % 2, replace=False)] = 1.0
        x_ref = rng.normal(size=D).astype(np.float32)
        if _margins_ok(tcam, x, mask, x_ref, cfgs):
            return dict(tcam=tcam, x=x, labels=labels, mask=mask, x_ref=x_ref)
    raise AssertionError("no seed with safe margins")


@pytest.fixture(scope="module")
def inp():
    return make_inputs()


def run_tf(inp, cfg, denoise=True, perm=PERM):
    out = L.d2net_losses(
        tf.constant(inp["tcam"]), tf.constant(inp["x"]), tf.constant(inp["labels"]), tf.constant(inp["mask"]),
        tf.constant(inp["x_ref"]), tf.constant(perm), cfg, denoise=denoise,
    )
    return {k: v.numpy() for k, v in out.items()}


def run_np(inp, cfg, denoise=True, perm=PERM):
    return np_losses(inp["tcam"], inp["x"], inp["labels"], inp["mask"], inp["x_ref"], perm, cfg, denoise)


def assert_terms_close(got, want, rtol=1e-4, atol=1e-5):
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=rtol, atol=atol, err_msg=k)


# --------------------------------------------------------------------------------------------
# Individual functions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
def test_video_scores(inp, preset_name, dataset):
    cfg = loss_cfg(preset_name, dataset)
    got = video_scores_tf(tf.constant(inp["tcam"]), tf.constant(inp["mask"]), cfg.topk_divisor).numpy()
    np.testing.assert_allclose(got, np_video_scores(inp["tcam"], inp["mask"], cfg.topk_divisor), rtol=1e-5, atol=1e-6)


def test_topk_count():
    mask = np.zeros((4, 20), np.float32)
    for b, n in enumerate((1, 8, 9, 20)):
        mask[b, :n] = 1
    np.testing.assert_array_equal(topk_count_tf(tf.reduce_sum(mask, 1), 8.0).numpy(), [1, 1, 2, 3])
    np.testing.assert_array_equal(topk_count_tf(tf.reduce_sum(mask, 1), 4.0).numpy(), [1, 2, 3, 5])


def test_video_scores_hand():
    # One class, valid length 9 -> k = 2 with divisor 8: mean of the two largest valid values;
    # the larger padded value must be ignored.
    tcam = np.array([[0.1, 0.9, 0.3, 0.8, 0.2, 0.0, 0.0, 0.0, 0.0, 0.99]], np.float32)[..., None]
    mask = np.array([[1] * 9 + [0]], np.float32)
    np.testing.assert_allclose(video_scores_tf(tcam, mask, 8.0).numpy(), [[0.85]], rtol=1e-6)


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
def test_fg_bg_embeddings_eq2(inp, preset_name, dataset):
    cfg = loss_cfg(preset_name, dataset)
    lam = L.top_down_attention(tf.constant(inp["tcam"]))
    xf, xb, hf, hb = L.foreground_background_embeddings(tf.constant(inp["x"]), lam, tf.constant(inp["mask"]), cfg)
    wf, wb, want_hf, want_hb = np_fg_bg(inp["x"], inp["tcam"], inp["mask"], cfg)
    np.testing.assert_allclose(xf.numpy(), wf, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xb.numpy(), wb, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(hf.numpy(), want_hf)
    np.testing.assert_array_equal(hb.numpy(), want_hb)


def test_fg_bg_sum_vs_mean(inp):
    """Weighted mean = weighted sum / sum of weights (official vs paper Eq. 2)."""
    lam = L.top_down_attention(tf.constant(inp["tcam"]))
    s_cfg = LossConfig(weighted_mean_embeddings=False)
    m_cfg = LossConfig(weighted_mean_embeddings=True)
    xf_s, xb_s, _, _ = L.foreground_background_embeddings(tf.constant(inp["x"]), lam, tf.constant(inp["mask"]), s_cfg)
    xf_m, xb_m, _, _ = L.foreground_background_embeddings(tf.constant(inp["x"]), lam, tf.constant(inp["mask"]), m_cfg)
    lam = lam.numpy() * inp["mask"]
    wf = (lam * (lam > 0.5)).sum(1, keepdims=True)
    np.testing.assert_allclose(xf_m.numpy() * wf, xf_s.numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(xf_m.numpy(), xf_s.numpy())


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
def test_pair_weights_eq3(inp, preset_name, dataset):
    cfg = loss_cfg(preset_name, dataset)
    xf, xb, _, _ = np_fg_bg(inp["x"], inp["tcam"], inp["mask"], cfg)
    got = L.pair_weights(tf.constant(xf, tf.float32), tf.constant(xb, tf.float32), tf.constant(PERM), cfg.gamma)
    want = np_pair_weights(xf, xb, PERM, cfg.gamma)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-6)
    assert np.all(want[0] >= 0)


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
def test_discriminative_loss_eq4(inp, preset_name, dataset):
    cfg = loss_cfg(preset_name, dataset)
    rng = np.random.default_rng(1)
    p = np_video_scores(inp["tcam"], inp["mask"], cfg.topk_divisor)
    w = [rng.uniform(0, 0.3, B) for _ in range(3)]
    valid = np_valid(inp["mask"], inp["labels"], cfg)
    if preset_name == "official":
        assert valid.tolist() == [1, 1, 0, 1]  # video 2 has 4 < 5 snippets
    got = L.discriminative_loss(
        tf.constant(p, tf.float32), tf.constant(inp["labels"]), *[tf.constant(v, tf.float32) for v in w],
        tf.constant(valid, tf.float32), cfg,
    ).numpy()
    np.testing.assert_allclose(got, np_dis(p, inp["labels"], *w, valid, cfg, cfg.beta), rtol=1e-5)


def test_discriminative_loss_reductions_and_clip():
    """Positive weighting by C, mean vs sum over classes, clipping of p = 0 / 1."""
    p = np.array([[0.0, 0.5, 1.0]], np.float32)
    y = np.array([[1.0, 0.0, 0.0]], np.float32)
    z = np.zeros(1, np.float32)
    one = np.ones(1, np.float32)
    eps = 1e-3
    pos = -((1 - eps) ** 2) * math.log(eps)
    neg = [-(0.5**2) * math.log(0.5), -((1 - eps) ** 2) * math.log(eps)]
    official = LossConfig()
    got = L.discriminative_loss(p, y, z, z, z, one, official).numpy()
    np.testing.assert_allclose(got, (3 * pos + sum(neg)) / 3, rtol=1e-5)
    paper = dataclasses.replace(official, positive_weight_num_classes=False, mean_over_classes=False)
    got = L.discriminative_loss(p, y, z, z, z, one, paper).numpy()
    np.testing.assert_allclose(got, pos + sum(neg), rtol=1e-5)
    assert np.isfinite(L.discriminative_loss(p, y, z, z, z, one, preset("paper").loss).numpy())


def test_discriminative_loss_skips_invalid_videos(inp):
    """Official: videos with < min_valid_snippets or no label do not count (mean over the valid ones)."""
    cfg = loss_cfg("official", "thumos14")
    labels = inp["labels"].copy()
    labels[1] = 0.0  # no label
    valid = np_valid(inp["mask"], labels, cfg)
    assert valid.tolist() == [1, 0, 0, 1]
    got = run_tf(dict(inp, labels=labels), dataclasses.replace(cfg, variant="dis"))["dis"]
    want = np_losses(inp["tcam"], inp["x"], labels, inp["mask"], inp["x_ref"], PERM,
                     dataclasses.replace(cfg, variant="dis"))["dis"]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # Changing the scores of the skipped videos does not change L_Dis.
    tcam = inp["tcam"].copy()
    tcam[1] = np.clip(tcam[1] + 0.3, 0, 1) * inp["mask"][1][:, None]
    tcam[2] = np.clip(tcam[2] + 0.3, 0, 1) * inp["mask"][2][:, None]
    # (w terms of the other videos depend on partners' embeddings only, not on the partners' tcam
    # through p; use variant 'focal' to isolate the reduction.)
    cfg_f = dataclasses.replace(cfg, variant="focal")
    a = run_tf(dict(inp, labels=labels), cfg_f)["dis"]
    b = run_tf(dict(inp, labels=labels, tcam=tcam), cfg_f)["dis"]
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
def test_ce_variant_is_plain_bce(inp, preset_name, dataset):
    cfg = loss_cfg(preset_name, dataset, variant="ce")
    got = run_tf(inp, cfg)
    p = np.clip(np_video_scores(inp["tcam"], inp["mask"], cfg.topk_divisor), cfg.clip_eps, 1 - cfg.clip_eps)
    y = inp["labels"]
    pw = C if cfg.positive_weight_num_classes else 1.0
    per = -pw * y * np.log(p) - (1 - y) * np.log(1 - p)
    per_video = per.mean(1) if cfg.mean_over_classes else per.sum(1)
    valid = np_valid(inp["mask"], y, cfg)
    np.testing.assert_allclose(got["dis"], (per_video * valid).sum() / valid.sum(), rtol=1e-4)
    np.testing.assert_allclose(got["loss"], got["dis"], rtol=1e-6)
    for k in ("w_fb", "w_fg", "w_bg", "snippet", "video"):
        assert got[k] == 0.0, k


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
@pytest.mark.parametrize("variant", ["ce", "focal", "dis", "d2net", "d2net_l1", "d2net_bce"])
@pytest.mark.parametrize("denoise", [True, False], ids=["denoise", "nodenoise"])
def test_d2net_losses_all_terms(inp, preset_name, dataset, variant, denoise):
    """Total (Eq. 1 / 11) and every term, for every variant, with denoising on and off."""
    cfg = loss_cfg(preset_name, dataset, variant=variant)
    got = run_tf(inp, cfg, denoise=denoise)
    want = run_np(inp, cfg, denoise=denoise)
    assert_terms_close(got, want)
    if variant == "d2net" and denoise:
        assert want["snippet"] > 0 and want["video"] > 0  # the inputs exercise both pDMI terms


def _packed_rows(x, mask, gap=2, seed=5):
    """x [B, T, D] as packed rows [L, D] with `gap` rows of noise between the videos (no loss
    may read them) and the row index [B, T] (past a video's end: row 0, as `pack_videos`)."""
    rng = np.random.default_rng(seed)
    rows, index, start = [], np.zeros(mask.shape, np.int32), 0
    for b in range(x.shape[0]):
        n = int(mask[b].sum())
        rows += [x[b, :n], rng.normal(size=(gap, x.shape[2])).astype(np.float32)]
        index[b, :n] = start + np.arange(n)
        start += n + gap
    return np.concatenate(rows), index


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
@pytest.mark.parametrize("xref_source", ["most_background_snippet", "background_embedding"])
def test_d2net_losses_from_packed_rows_equal_padded(inp, preset_name, dataset, xref_source):
    """Every term, x_ref and the gradient of the loss w.r.t. the embeddings are the same
    from the packed rows (`row_index`) as from the padded [B, T, D] layout."""
    cfg = dataclasses.replace(loss_cfg(preset_name, dataset, variant="d2net"), xref_source=xref_source)
    rows, index = _packed_rows(inp["x"], inp["mask"])
    args = (tf.constant(inp["labels"]), tf.constant(inp["mask"]), tf.constant(inp["x_ref"]), tf.constant(PERM), cfg)
    padded, packed = tf.constant(inp["x"]), tf.constant(rows)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([padded, packed])
        want = L.d2net_losses(tf.constant(inp["tcam"]), padded, *args)
        got = L.d2net_losses(tf.constant(inp["tcam"]), packed, *args, row_index=tf.constant(index))
    assert_terms_close({k: v.numpy() for k, v in got.items()}, {k: v.numpy() for k, v in want.items()},
                       rtol=1e-5, atol=1e-6)
    g_padded = tape.gradient(want["loss"], padded).numpy()
    g_rows = tape.gradient(got["loss"], packed).numpy()
    valid = inp["mask"] > 0
    np.testing.assert_allclose(g_rows[index[valid]], g_padded[valid], rtol=1e-4, atol=1e-7)
    gap_rows = np.setdiff1d(np.arange(len(rows)), index[valid])
    assert np.abs(g_rows[gap_rows]).max() == 0.0 and np.abs(g_padded[valid]).max() > 0


def test_d2net_losses_focal_has_no_w_terms(inp):
    cfg = loss_cfg("official", "thumos14")
    focal = run_tf(inp, dataclasses.replace(cfg, variant="focal"))
    dis = run_tf(inp, dataclasses.replace(cfg, variant="dis"))
    assert focal["w_fb"] == focal["w_fg"] == focal["w_bg"] == 0.0
    assert dis["w_fg"] > 0 and dis["w_bg"] > 0
    assert dis["dis"] > focal["dis"]  # w >= 0 only increases the modulating factors


def test_d2net_losses_denoise_tensor(inp):
    """`denoise` may be a boolean tensor (as in train_step)."""
    cfg = loss_cfg("paper", "thumos14")
    on = run_tf(inp, cfg, denoise=tf.constant(True))
    off = run_tf(inp, cfg, denoise=tf.constant(False))
    np.testing.assert_allclose(on["loss"], off["loss"] + cfg.alpha_snippet * on["snippet"] + cfg.alpha_video * on["video"],
                               rtol=1e-5)
    assert off["snippet"] == off["video"] == 0.0


def test_bottom_up_attention_eq8(inp):
    got = L.bottom_up_attention(tf.constant(inp["x"]), tf.constant(inp["x_ref"])).numpy()
    want = np_bottom_up(inp["x"], inp["x_ref"])
    valid = inp["mask"] > 0
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-5, atol=1e-6)
    # Parallel to x_ref -> 0, anti-parallel -> 1.
    x = np.stack([inp["x_ref"] * 3.0, -inp["x_ref"]])[None]
    np.testing.assert_allclose(L.bottom_up_attention(x, inp["x_ref"]).numpy(), [[0.0, 1.0]], atol=1e-6)


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
def test_snippet_joint_matrix_eq9(inp, preset_name, dataset):
    cfg = loss_cfg(preset_name, dataset)
    tcam, mask, labels = tf.constant(inp["tcam"]), tf.constant(inp["mask"]), tf.constant(inp["labels"])
    att = L.bottom_up_attention(tf.constant(inp["x"]), tf.constant(inp["x_ref"]))
    fg, bg = L.snippet_selection(att, mask, cfg)
    lam = L.top_down_attention(tcam)
    lam_fg = L.top_down_attention(tcam, labels) if cfg.labelled_class_fg_attention else lam
    got = L.snippet_joint_matrix(lam_fg, lam, fg, bg, cfg.count_normalised_y).numpy()
    want = np_u1(inp["tcam"], inp["labels"], np_bottom_up(inp["x"], inp["x_ref"]), inp["mask"], cfg)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Official: columns are distributions (sum to 1) when non-empty.
    if cfg.count_normalised_y:
        colsum = want.sum(1)
        assert np.all((np.abs(colsum - 1) < 1e-9) | (colsum == 0))
    else:
        assert np.all(np.abs(want.sum((1, 2)) - 1) < 1e-9)


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
def test_video_joint_matrix_eq10(inp, preset_name, dataset):
    cfg = loss_cfg(preset_name, dataset)
    p = np_video_scores(inp["tcam"], inp["mask"], cfg.topk_divisor)
    got = L.video_joint_matrix(tf.constant(p, tf.float32), tf.constant(inp["labels"]), cfg).numpy()
    np.testing.assert_allclose(got, np_u2(p, inp["labels"], cfg), rtol=1e-5, atol=1e-7)


def test_video_joint_matrix_floor_hand():
    cfg = LossConfig(video_score_floor=0.2, count_normalised_y=True)
    p = np.array([[0.5, 0.05, 0.5], [0.1, 0.8, 0.1]], np.float32)
    y = np.array([[1, 0, 1], [1, 1, 0]], np.float32)
    # p1 -> [0.5, 0, 0.5]; p2 -> [0, 1, 0] (0.1 < 0.16); Y columns / counts [2, 1, 1].
    want = np.array([[0.25, 0.0, 0.5], [0.5, 1.0, 0.0], [0.25, 0.0, 0.5]])
    np.testing.assert_allclose(L.video_joint_matrix(p, y, cfg).numpy(), want, atol=1e-6)


# --------------------------------------------------------------------------------------------
# pDMI (Eq. 7)
# --------------------------------------------------------------------------------------------


def pdmi_and_grad(u):
    u = tf.Variable(np.asarray(u, np.float32))
    with tf.GradientTape() as tape:
        loss, ok = L.pdmi(u)
        total = tf.reduce_sum(loss)
    g = tape.gradient(total, u)
    return loss.numpy(), ok.numpy(), (np.zeros(u.shape, np.float32) if g is None else g.numpy())


HAND = [
    ("diag21", [[2.0, 0.0], [0.0, 1.0]], math.log(2.0), True),
    ("ones_rank1", [[1.0, 1.0], [1.0, 1.0]], 0.0, False),  # rank 1: log(s1 / s1) = 0, reported dropped
    ("identity", [[1.0, 0.0], [0.0, 1.0]], 0.0, True),
    ("scaled_rotation", [[0.0, -3.0], [3.0, 0.0]], 0.0, True),
    ("zero", [[0.0, 0.0], [0.0, 0.0]], 0.0, False),
    ("zero_row", [[1.0, 2.0], [0.0, 0.0]], 0.0, False),
    ("zero_col", [[0.3, 0.0], [0.7, 0.0]], 0.0, False),
    ("nan", [[1.0, float("nan")], [0.0, 1.0]], 0.0, False),
    ("inf", [[1.0, float("inf")], [0.0, 1.0]], 0.0, False),
    ("diag41", [[0.0, 4.0], [1.0, 0.0]], math.log(4.0), True),
    ("tiny_second", [[1.0, 0.0], [0.0, 1e-9]], 0.0, False),  # below the cut-off: counts as zero
    ("second_above_abs_tol", [[1.0, 0.0], [0.0, 2e-5]], math.log(1.0 / 2e-5), True),
]


@pytest.mark.parametrize("name,u,want,want_ok", HAND, ids=[h[0] for h in HAND])
def test_pdmi_hand(name, u, want, want_ok):
    loss, ok, grad = pdmi_and_grad(u)
    np.testing.assert_allclose(loss, want, atol=1e-5)
    assert bool(ok) == want_ok
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), grad
    if not want_ok:
        assert np.all(grad == 0)


def test_pdmi_batched_and_gradients_finite():
    us = np.array([h[1] for h in HAND], np.float32)
    loss, ok, grad = pdmi_and_grad(us)
    np.testing.assert_allclose(loss, [h[2] for h in HAND], atol=1e-5)
    assert ok.tolist() == [h[3] for h in HAND]
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2)])
def test_pdmi_rank_deficient_and_equal_sv(shape):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(shape[0], 1))
    b = rng.normal(size=(1, shape[1]))
    rank1 = (a @ b).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(max(shape), max(shape))))
    eq = (2.0 * q[: shape[0], : shape[1]]).astype(np.float32)  # all singular values 2
    for u, want, want_ok in ((rank1, 0.0, False), (eq, 0.0, True)):
        loss, ok, grad = pdmi_and_grad(u)
        assert bool(ok) == want_ok
        np.testing.assert_allclose(loss, want, atol=1e-4)
        assert np.all(np.isfinite(grad))
    # Rank 2 with two equal small singular values.
    u = np.diag([3.0, 1.0, 1.0, 0.0]).astype(np.float32)
    loss, ok, grad = pdmi_and_grad(u)
    np.testing.assert_allclose(loss, math.log(3.0), rtol=1e-5)
    assert np.all(np.isfinite(grad))


def test_pdmi_20x20_against_numpy_svd():
    rng = np.random.default_rng(4)
    u = rng.uniform(size=(20, 20)).astype(np.float32)
    loss, ok, grad = pdmi_and_grad(u)
    uu, s, vt = np.linalg.svd(u.astype(np.float64))
    assert ok
    np.testing.assert_allclose(loss, np.log(s[0] / s[-1]), rtol=1e-4)
    # d log(s1 / s_r) / dU = u1 v1^T / s1 - u_r v_r^T / s_r.
    want = np.outer(uu[:, 0], vt[0]) / s[0] - np.outer(uu[:, -1], vt[-1]) / s[-1]
    np.testing.assert_allclose(grad, want, rtol=1e-2, atol=1e-3 * np.abs(want).max())
    assert np_pdmi(u)[0] == pytest.approx(float(loss), rel=1e-4)


def test_d2net_losses_counts_dropped_pdmi(inp):
    """x_ref = 0 measured before its update: every lambda' = 0.5, no video has pseudo fg/bg,
    none contributes to the snippet term (0, nothing dropped). The official order measures
    against the updated x_ref (0.1 x the batch's background embedding), and the term is on."""
    cfg = loss_cfg("official", "thumos14")
    zero = dict(inp, x_ref=np.zeros(D, np.float32))
    before = run_tf(zero, dataclasses.replace(cfg, snippet_uses_updated_xref=False))
    assert before["snippet"] == 0.0 and before["pdmi_dropped"] == 0
    after = run_tf(zero, cfg)
    assert after["snippet"] > 0
    np.testing.assert_allclose(after["snippet"], run_np(zero, cfg)["snippet"], rtol=1e-4)


def test_rank_one_u1_is_dropped_not_reproduced():
    """A time-constant TCAM gives a rank-1 U1: the official pDMI adds ~log(s1 / 1e-8); here the
    term is dropped and counted (a deliberate fix)."""
    u1 = np.array([[[0.3, 0.3], [0.7, 0.7]]], np.float32)
    loss, ok = L.pdmi(np.maximum(u1, 1e-10), 1e-5, relative=True)
    assert loss.numpy()[0] == 0.0 and not ok.numpy()[0]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_video_pdmi_rank_decision_is_precision_independent(dtype):
    """Exactly rank-deficient U2 (B < C videos, a repeated label set): the rank decision and the
    loss do not depend on the input precision and the gradient stays finite."""
    rng = np.random.default_rng(11)
    labels = np.zeros((3, 6), np.float32)
    labels[0, [0, 1]] = labels[1, [0, 1]] = labels[2, 2] = 1  # classes 0 and 1 always together
    p = rng.uniform(0.05, 0.95, (3, 6)).astype(np.float32)
    p = tf.cast(tf.constant(p), dtype)
    cfg = LossConfig()
    with tf.GradientTape() as tape:
        tape.watch(p)
        u2 = L.video_joint_matrix(tf.cast(p, tf.float32), labels, cfg)
        loss, ok = L.pdmi(u2, cfg.pdmi_video_tol)
    grad = tape.gradient(loss, p)
    p64 = tf.cast(p, tf.float64).numpy()
    want, want_ok = np_pdmi(np_u2(p64, labels, cfg), cfg.pdmi_video_tol)
    assert bool(ok.numpy()) == want_ok
    s = np.linalg.svd(np_u2(p64, labels, cfg), compute_uv=False)
    assert np.sum(s > 1e-5) == 2  # rank 2 of 6: the four exact zeros are not sigma_r
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
    assert np.all(np.isfinite(tf.cast(grad, tf.float32).numpy()))


def test_video_pdmi_same_loss_in_every_precision():
    labels = np.zeros((3, 6), np.float32)
    labels[0, [0, 1]] = labels[1, [0, 1]] = labels[2, 2] = 1
    p = np.random.default_rng(12).uniform(0.05, 0.95, (3, 6)).astype(np.float32)
    cfg = LossConfig()
    got = []
    for dtype in (tf.float32, tf.float64):
        u2 = L.video_joint_matrix(tf.constant(p, dtype), labels, cfg)
        got.append(float(L.pdmi(u2, cfg.pdmi_video_tol)[0].numpy()))
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5)


def test_video_joint_matrix_counts_only_rows():
    """Official: invalid videos are out of U2 (p and the Y counts)."""
    cfg = LossConfig()
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.5]], np.float32)
    y = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    rows = np.array([1, 1, 0], np.float32)
    got = L.video_joint_matrix(p, y, cfg, rows).numpy()
    np.testing.assert_allclose(got, L.video_joint_matrix(p[:2], y[:2], cfg).numpy(), atol=1e-7)


def test_inclusive_threshold_counts_half_for_both():
    """Official: lambda = 0.5 exactly is foreground and background (values < 0.5 are zeroed)."""
    lam = tf.constant([[0.5, 0.7, 0.2]])
    mask = tf.ones([1, 3])
    w_fg, w_bg = L.foreground_background_weights(lam, mask, LossConfig())
    np.testing.assert_allclose(w_fg.numpy(), [[0.5, 0.7, 0.0]], atol=1e-7)
    np.testing.assert_allclose(w_bg.numpy(), [[0.5, 0.0, 0.8]], atol=1e-7)
    w_fg, w_bg = L.foreground_background_weights(lam, mask, LossConfig(inclusive_thresholds=False))
    np.testing.assert_allclose(w_fg.numpy(), [[0.0, 0.7, 0.0]], atol=1e-7)
    np.testing.assert_allclose(w_bg.numpy(), [[0.0, 0.0, 0.8]], atol=1e-7)


def test_xref_update_only_from_videos_with_background():
    cfg = LossConfig()
    stats = {"valid": tf.constant([1.0, 1.0, 0.0]), "has_bg": tf.constant([1.0, 0.0, 1.0]),
             "bg_emb": tf.constant([[1.0, 0.0], [0.0, 5.0], [9.0, 9.0]])}
    ref = tf.constant([2.0, 2.0])
    np.testing.assert_allclose(L.updated_reference(stats, ref, cfg).numpy(), [0.9 * 2 + 0.1, 0.9 * 2], rtol=1e-6)
    none = dict(stats, has_bg=tf.constant([0.0, 0.0, 1.0]))  # the only video with bg is invalid
    np.testing.assert_array_equal(L.updated_reference(none, ref, cfg).numpy(), [2.0, 2.0])
    old = dataclasses.replace(cfg, xref_from_videos_with_background=False, exclude_invalid_videos=False)
    np.testing.assert_allclose(L.updated_reference(stats, ref, old).numpy(),
                               0.9 * 2 + 0.1 * np.array([10 / 3, 14 / 3]), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------


def test_random_derangement():
    for n in range(2, 13):
        seen = set()
        for seed in range(40):
            perm = L.random_derangement(n, tf.constant([seed, 7 * seed + 1], tf.int32)).numpy()
            assert sorted(perm.tolist()) == list(range(n)), perm
            assert np.all(perm != np.arange(n)), (n, seed, perm)
            seen.add(tuple(perm))
        if n >= 4:
            assert len(seen) > 1  # actually random


def test_induced_partner_hand():
    # perm: 0->3->1->4->0 and 2->2. Subset {1, 2, 4}: 1 -> 4, 4 -> (0, 3) -> 1, 2 -> itself.
    perm = tf.constant([3, 4, 2, 1, 0])
    member = tf.constant([False, True, True, False, True])
    np.testing.assert_array_equal(L.induced_partner(perm, member).numpy(), [1, 4, 2, 1, 1])
    np.testing.assert_array_equal(L.induced_partner(perm, tf.zeros([5], tf.bool)).numpy(), [-1] * 5)


def test_subset_pair_weights_hand():
    """Video 1 has no foreground: w_fg = w_fb = 0 for it; with the official row shift, the w_fb
    of the 2nd fg video (video 2) lands on row 1, and row 2 gets the 3rd fg video's."""
    e = np.eye(3, dtype=np.float32)
    x_fg = np.stack([e[0], np.zeros(3, np.float32), e[1], e[0] + e[1]])
    x_bg = np.stack([e[1], e[2], e[0], e[2]])
    has_fg = np.array([1, 0, 1, 1], np.float32)
    has_bg = np.ones(4, np.float32)
    rows = np.ones(4, np.float32)
    perm = np.array([1, 2, 3, 0], np.int32)
    cfg = dataclasses.replace(LossConfig(), gamma=1.0, separation_row_shift=False)
    w_fb, w_fg, w_bg = [w.numpy() for w in L.subset_pair_weights(x_fg, x_bg, has_fg, has_bg, rows, perm, cfg)]
    want_fb, want_fg, want_bg = np_subset_pair_weights(x_fg, x_bg, has_fg > 0, has_bg > 0, rows, perm, cfg)
    np.testing.assert_allclose(w_fg, want_fg, atol=1e-6)
    np.testing.assert_allclose(w_bg, want_bg, atol=1e-6)
    np.testing.assert_allclose(w_fb, want_fb, atol=1e-6)
    # FG = [0, 2, 3]: fg partners 0->2, 2->3, 3->0; fb partners (first bg on perm) 0->1, 2->3, 3->0.
    np.testing.assert_allclose(w_fg, [1.0, 0.0, 1 - 1 / np.sqrt(2), 1 - 1 / np.sqrt(2)], atol=1e-6)
    np.testing.assert_allclose(w_fb, [0.0, 0.0, 0.0, 1 / np.sqrt(2)], atol=1e-6)  # cos(e0, e2), cos(e1, e2), cos(e0+e1, e1)
    shifted = dataclasses.replace(cfg, separation_row_shift=True)
    x_bg2 = np.stack([e[0], e[0], e[1], e[1]])  # now w_fb(0) = cos(e0, x_bg[1]) = 1, w_fb(2) = cos(e1, e1) = 1
    w_fb = L.subset_pair_weights(x_fg, x_bg2, has_fg, has_bg, rows, perm, shifted)[0].numpy()
    want = np_subset_pair_weights(x_fg, x_bg2, has_fg > 0, has_bg > 0, rows, perm, shifted)[0]
    np.testing.assert_allclose(w_fb, want, atol=1e-6)
    # fg videos 0, 2, 3 write rows 0, 1, 2 (not 0, 2, 3): w(0)=1, w(2)=1, w(3)=cos(e0+e1, e0)
    np.testing.assert_allclose(w_fb, [1.0, 1.0, 1 / np.sqrt(2), 0.0], atol=1e-6)


def test_random_pairing_is_a_permutation_with_fixed_points():
    fixed = 0
    for seed in range(200):
        perm = L.random_pairing(6, tf.constant([seed, 1], tf.int32)).numpy()
        assert sorted(perm.tolist()) == list(range(6))
        fixed += int(np.any(perm == np.arange(6)))
    assert 100 < fixed < 160  # P(some fixed point) = 1 - 1/e ~ 0.63 for a uniform permutation


def test_random_derangement_in_tf_function():
    f = tf.function(lambda n, seed: L.random_derangement(n, seed))
    for n in (2, 5, 10):
        perm = f(tf.constant(n), tf.constant([1, 2], tf.int32)).numpy()
        assert sorted(perm.tolist()) == list(range(n)) and np.all(perm != np.arange(n))


# --------------------------------------------------------------------------------------------
# Masking and gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset_name,dataset", PRESETS, ids=PRESET_IDS)
@pytest.mark.parametrize("variant", ["dis", "d2net", "d2net_l1", "d2net_bce"])
@pytest.mark.parametrize("fill", ["zeros", "garbage"])
def test_padding_does_not_change_losses(inp, preset_name, dataset, variant, fill):
    cfg = loss_cfg(preset_name, dataset, variant=variant)
    extra = 6
    rng = np.random.default_rng(5)

    def pad(a, garbage):
        shape = (a.shape[0], extra) + a.shape[2:]
        filler = garbage(shape) if fill == "garbage" else np.zeros(shape, np.float32)
        return np.concatenate([a, filler.astype(np.float32)], axis=1)

    padded = dict(
        inp,
        tcam=pad(inp["tcam"], lambda s: rng.uniform(0, 1, s)),
        x=pad(inp["x"], lambda s: rng.normal(size=s) * 10),
        mask=np.concatenate([inp["mask"], np.zeros((B, extra), np.float32)], 1),
    )
    a = run_tf(inp, cfg)
    b = run_tf(padded, cfg)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_w_terms_not_detached(inp):
    """Gradient of L_Dis w.r.t. the embeddings: non-zero for 'dis' (w terms), zero for 'focal'."""

    def grad(variant):
        cfg = loss_cfg("official", "thumos14", variant=variant)
        x = tf.Variable(inp["x"])
        with tf.GradientTape() as tape:
            out = L.d2net_losses(tf.constant(inp["tcam"]), x, tf.constant(inp["labels"]), tf.constant(inp["mask"]),
                                 tf.constant(inp["x_ref"]), tf.constant(PERM), cfg)
        g = tape.gradient(out["dis"], x)
        return np.zeros_like(inp["x"]) if g is None else g.numpy()

    g_dis = grad("dis")
    assert np.all(np.isfinite(g_dis))
    assert np.abs(g_dis).max() > 1e-6
    assert np.all(g_dis[inp["mask"] == 0] == 0)  # padding gets no gradient
    np.testing.assert_array_equal(grad("focal"), 0.0)


def test_d2net_losses_gradients_finite(inp):
    cfg = loss_cfg("official", "thumos14")
    tcam = tf.Variable(inp["tcam"])
    x = tf.Variable(inp["x"])
    with tf.GradientTape() as tape:
        out = L.d2net_losses(tcam, x, tf.constant(inp["labels"]), tf.constant(inp["mask"]),
                             tf.constant(inp["x_ref"]), tf.constant(PERM), cfg)
    g_t, g_x = tape.gradient(out["loss"], [tcam, x])
    assert np.all(np.isfinite(g_t.numpy())) and np.all(np.isfinite(g_x.numpy()))


# --------------------------------------------------------------------------------------------
# Loss variants
# --------------------------------------------------------------------------------------------


def test_every_config_variant_has_one_variant_object():
    assert tuple(L.VARIANTS) == LOSS_VARIANTS
    for name, variant in L.VARIANTS.items():
        assert variant.name == name and L.variant_for(LossConfig(variant=name)) is variant


@pytest.mark.parametrize("variant", LOSS_VARIANTS)
def test_variant_statistics_are_what_the_losses_produce(inp, variant):
    """Each variant declares the per-video statistics its losses read; exactly those are computed."""
    cfg = LossConfig(variant=variant)
    args = [tf.constant(inp[k]) for k in ("tcam", "x", "labels", "mask")]
    stats = L.per_video_statistics(*args, cfg)
    stats.update(L.snippet_statistics(*args, tf.constant(inp["x_ref"]), cfg))
    assert sorted(stats) == sorted(L.variant_for(cfg).statistics)
    terms = L.losses_from_statistics(stats, tf.constant(PERM), cfg)
    assert all(np.isfinite(v.numpy()) for v in terms.values())
