"""The synthetic feature model: latent activations of class, group, context, background and
nuisance components, rendered into [T, D] I3D-like features (see the package docstring)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.data.synthetic.annotations import SyntheticAnnotations
from d2net_tf.data.synthetic.config import SyntheticConfig
from d2net_tf.errors import D2NetInputError

# THUMOS14 groups: classes sharing how the action moves, and where it happens.
THUMOS_ACTION_GROUPS = {
    "throwing": ("BaseballPitch", "CricketBowling", "CricketShot", "HammerThrow", "JavelinThrow", "Shotput",
                 "ThrowDiscus"),
    "diving": ("CliffDiving", "Diving"),
    "jumping": ("HighJump", "LongJump", "PoleVault"),
    "swinging": ("GolfSwing", "TennisSwing"),
    "ball_play": ("BasketballDunk", "VolleyballSpiking", "SoccerPenalty", "FrisbeeCatch"),
}
THUMOS_SCENE_GROUPS = {
    "athletics_stadium": ("HammerThrow", "JavelinThrow", "Shotput", "ThrowDiscus", "HighJump", "LongJump",
                          "PoleVault"),
    "cricket_ground": ("CricketBowling", "CricketShot"),
    "water": ("CliffDiving", "Diving"),
    "court": ("BasketballDunk", "VolleyballSpiking", "TennisSwing"),
    "grass_field": ("BaseballPitch", "SoccerPenalty", "FrisbeeCatch", "GolfSwing"),
}


def num_snippets(duration_s: np.ndarray | float) -> np.ndarray:
    """T_i = max(1, round(duration_i * 25 / 16))."""
    return np.maximum(1, np.round(np.asarray(duration_s, np.float64) * I3D_SNIPPETS_PER_SECOND)).astype(np.int64)


def segment_snippets(start_s: float, end_s: float, t: int) -> tuple[int, int]:
    """Snippet range [first, last) of a segment: floor(s * 25/16) .. ceil(e * 25/16), clipped to [0, t]."""
    a = int(np.clip(np.floor(start_s * I3D_SNIPPETS_PER_SECOND), 0, t - 1))
    b = int(np.clip(np.ceil(end_s * I3D_SNIPPETS_PER_SECOND), a + 1, t))
    return a, b


def _stable_hash(text: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{text}".encode()).digest()[:8], "little")


def _groups(classlist: list[str], table: dict[str, tuple[str, ...]], salt: str, n_hashed: int) -> np.ndarray:
    """[C] group id per class: from `table` when it names the class, else a singleton or a hash bucket."""
    if any(c in members for c in classlist for members in table.values()):
        names = list(table)
        gid = []
        for c in classlist:
            hit = [k for k, g in enumerate(table) if c in table[g]]
            if hit:
                gid.append(hit[0])
            else:
                names.append(c)  # a group of its own
                gid.append(len(names) - 1)
        return np.asarray(gid, np.int64)
    return np.asarray([_stable_hash(c, salt) % n_hashed for c in classlist], np.int64)


@dataclasses.dataclass
class _Model:
    """Fixed (per seed) parts of the feature model."""

    cfg: SyntheticConfig
    feature_dim: int
    num_classes: int
    action_group: np.ndarray  # [C]
    scene_group: np.ndarray  # [C]
    offsets: dict[str, int]  # first latent row of each block
    weights: np.ndarray  # [K, D] float32


def build_model(cfg: SyntheticConfig, classlist: list[str], feature_dim: int, seed: int) -> _Model:
    if feature_dim < 2 or feature_dim % 2:
        raise D2NetInputError(f"feature_dim must be an even number >= 2 (RGB half + flow half), got {feature_dim}")
    c = len(classlist)
    ag = _groups(classlist, THUMOS_ACTION_GROUPS, "action", cfg.num_hashed_groups)
    sg = _groups(classlist, THUMOS_SCENE_GROUPS, "scene", cfg.num_hashed_groups)
    blocks = [
        ("action_class", c, "action"),
        ("action_group", int(ag.max()) + 1, "action"),
        ("action_variant", c * cfg.variants_per_class, "action"),
        ("distractor", cfg.num_distractor_components, "action"),
        ("scene_class", c, "context"),
        ("scene_group", int(sg.max()) + 1, "context"),
        ("background", cfg.num_background_components, "context"),
        ("noise", cfg.num_noise_components, "noise"),
    ]
    k = sum(n for _, n, _ in blocks)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    w = rng.standard_normal((k, feature_dim), dtype=np.float32)
    w *= rng.random((k, feature_dim), dtype=np.float32) < cfg.component_density
    w /= np.float32(np.sqrt(cfg.component_density))
    half = feature_dim // 2
    gains = {
        "action": (cfg.rgb_action_gain, cfg.flow_action_gain),
        "context": (cfg.rgb_context_gain, cfg.flow_context_gain),
        "noise": (1.0, 1.0),
    }
    offsets, row = {}, 0
    for name, n, kind in blocks:
        offsets[name] = row
        w[row:row + n, :half] *= np.float32(gains[kind][0])
        w[row:row + n, half:] *= np.float32(gains[kind][1])
        row += n
    offsets["end"] = row
    return _Model(cfg, feature_dim, c, ag, sg, offsets, w)


def _distance_to_mask(mask: np.ndarray) -> np.ndarray:
    """Distance (in snippets) of each position to the nearest True of `mask`; inf when none."""
    t = mask.shape[0]
    idx = np.arange(t, dtype=np.float64)
    if not mask.any():
        return np.full(t, np.inf)
    last = np.maximum.accumulate(np.where(mask, idx, -np.inf))
    nxt = np.minimum.accumulate(np.where(mask, idx, np.inf)[::-1])[::-1]
    return np.minimum(idx - last, nxt - idx)


def _ar1(rng: np.random.Generator, t: int, k: int, rho: float) -> np.ndarray:
    """[t, k] stationary unit-variance AR(1) processes along axis 0 (truncated-kernel filter)."""
    if rho <= 0.0:
        return rng.standard_normal((t, k), dtype=np.float32)
    lags = int(np.ceil(np.log(1e-4) / np.log(rho))) if rho < 1 else t
    e = rng.standard_normal((t + lags - 1, k), dtype=np.float32) * np.float32(np.sqrt(1.0 - rho * rho))
    out = np.zeros((t, k), np.float32)
    for lag in range(lags):  # loop over filter taps; vectorised over snippets
        out += np.float32(rho ** lag) * e[lags - 1 - lag: lags - 1 - lag + t]
    return out


def video_features(model: _Model, ann: SyntheticAnnotations, i: int, class_index: dict[str, int], seed: int) -> np.ndarray:
    cfg, off = model.cfg, model.offsets
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, int(ann.source_index[i]))))
    t = int(num_snippets(ann.duration[i]))
    r = I3D_SNIPPETS_PER_SECOND
    centres = np.arange(t, dtype=np.float64) + 0.5
    ramp = max(cfg.boundary_ramp_seconds * r, 1e-6)
    latent = np.zeros((t, off["end"]), np.float32)

    # Actions: soft-boundary trapezoids, per-instance strength.
    present = sorted({class_index[c] for c in ann.labels_all[i] if c in class_index}
                     | {class_index[c] for c in ann.labels[i] if c in class_index})
    alpha = np.zeros((model.num_classes, t), np.float64)
    inside = np.zeros((model.num_classes, t), bool)
    nv = cfg.variants_per_class
    variants = np.zeros((model.num_classes * nv, t), np.float64)
    segs = ann.segments[i]
    strengths = cfg.action_strength * rng.lognormal(0.0, cfg.instance_strength_sigma, size=len(segs))
    for (s, e), label, strength in zip(segs, ann.labels[i], strengths):
        c = class_index[label]
        tri = strength * np.clip(np.minimum((centres - s * r) / ramp, (e * r - centres) / ramp) + 0.5, 0.0, 1.0)
        alpha[c] = np.maximum(alpha[c], tri)
        if nv:
            mix = rng.dirichlet(np.ones(nv))
            variants[c * nv:(c + 1) * nv] = np.maximum(variants[c * nv:(c + 1) * nv], mix[:, None] * tri)
        if cfg.num_distractor_components:
            comp = off["distractor"] + rng.integers(cfg.num_distractor_components)
            latent[:, comp] += np.float32(cfg.action_motion_weight) * tri.astype(np.float32)
        a, b = segment_snippets(s, e, t)
        inside[c, a:b] = True
    if nv:
        latent[:, off["action_variant"]:off["action_variant"] + model.num_classes * nv] += (
            np.float32(cfg.action_variant_weight) * variants.T.astype(np.float32))
    if ann.ambiguous and segs:
        mids = np.array([(s + e) / 2 for s, e in segs])
        for v, s, e in ann.ambiguous:
            if v != ann.videoname[i]:
                continue
            c = class_index[ann.labels[i][int(np.argmin(np.abs(mids - (s + e) / 2)))]]
            tri = np.minimum((centres - s * r) / ramp, (e * r - centres) / ramp) + 0.5
            alpha[c] = np.maximum(alpha[c], cfg.ambiguous_strength * np.clip(tri, 0.0, 1.0))
    for c in present:
        latent[:, off["action_class"] + c] += np.float32(cfg.action_class_weight) * alpha[c].astype(np.float32)
        latent[:, off["action_group"] + model.action_group[c]] += (
            np.float32(cfg.action_group_weight) * alpha[c].astype(np.float32))
        # Context: everywhere in the video, stronger around (and inside) the class's segments.
        dist = _distance_to_mask(inside[c])
        beta = cfg.context_background_level + cfg.context_near_action_level * np.exp(
            -dist / max(cfg.context_spread_seconds * r, 1e-6))
        latent[:, off["scene_class"] + c] += np.float32(cfg.context_class_weight) * beta.astype(np.float32)
        latent[:, off["scene_group"] + model.scene_group[c]] += (
            np.float32(1.0 - cfg.context_class_weight) * beta.astype(np.float32))

    # Video-specific background appearance.
    nb = min(cfg.background_components_per_video, cfg.num_background_components)
    if nb:
        comps = rng.choice(cfg.num_background_components, size=nb, replace=False)
        latent[:, off["background"] + comps] += (cfg.background_level * rng.dirichlet(np.ones(nb))).astype(np.float32)

    # Class-agnostic motion distractors.
    if cfg.num_distractor_components:
        n_d = rng.poisson(cfg.distractor_rate_per_minute * ann.duration[i] / 60.0)
        for _ in range(n_d):
            mid = rng.uniform(0, t)
            half_len = 0.5 * max(rng.exponential(cfg.distractor_seconds) * r, 1.0)
            tri = np.minimum(centres - (mid - half_len), (mid + half_len) - centres) / ramp + 0.5
            comp = off["distractor"] + rng.integers(cfg.num_distractor_components)
            latent[:, comp] += np.float32(cfg.distractor_strength) * np.clip(tri, 0.0, 1.0).astype(np.float32)

    # Temporally smooth low-rank nuisance.
    if cfg.num_noise_components:
        per_component = cfg.smooth_noise_std / np.sqrt(cfg.num_noise_components)
        latent[:, off["noise"]:off["end"]] = np.float32(per_component) * _ar1(
            rng, t, cfg.num_noise_components, cfg.temporal_correlation)

    half = model.feature_dim // 2
    m = max(1, cfg.noise_smoothing)
    e = rng.standard_normal((t + m - 1, model.feature_dim), dtype=np.float32)
    x = e[m - 1:].copy()
    for lag in range(1, m):  # moving average over m snippets, unit variance
        x += e[m - 1 - lag:m - 1 - lag + t]
    del e
    x *= np.float32(1.0 / np.sqrt(m))
    x[:, :half] *= np.float32(cfg.rgb_noise_std)
    x[:, half:] *= np.float32(cfg.flow_noise_std)
    x += latent @ model.weights
    x += np.float32(cfg.bias)
    np.maximum(x, 0.0, out=x)
    x *= np.float32(cfg.scale)
    return x
