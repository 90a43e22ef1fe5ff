"""Synthetic I3D-like features on the real THUMOS14 / ActivityNet1.2 annotations.

Writes a complete W-TALC-layout dataset that a W-TALC loader reads unchanged:

  OUT/{DATASET}-I3D-JOINTFeatures.npy   object array, one float32 [T_i, D] per video
  OUT/{DATASET}-Annotations/            the (vendored) annotation files
  OUT/{DATASET}-synthetic.json          preset, seed and SyntheticConfig used

The videos, durations, segments and labels are the real ones (vendored with the
package); only the features are made up. T_i = max(1, round(duration_i * 25 / 16)).

Feature model (per video, per snippet t; all vectors of width D, first half
"RGB", second half "flow"):

  x_t = relu(bias + sum_k a_k(t) * W_k + white_noise_t)

with latent activations a_k(t) for these components W_k (fixed random sparse
Gaussian patterns, one per component, with per-modality gains):
  * action of class c (class-specific) and of its action group (shared by e.g.
    all throwing sports), active inside each ground-truth segment of c with a
    soft linear ramp across each boundary and a per-instance random strength;
    carried mostly by the flow half;
  * context/scene of class c and of its scene group (e.g. athletics stadium),
    present all through a video of class c and stronger near its actions
    (decaying with the distance to the nearest segment), carried mostly by the
    RGB half: the foreground/background confusion weak supervision suffers from;
  * a video-specific background appearance (a few components of a shared pool);
  * class-agnostic motion distractors (short bursts in the background);
  * a low-rank temporally smooth nuisance (AR(1) over snippets, like the
    correlation of overlapping I3D snippets) plus white per-dimension noise.

The knobs (`SyntheticConfig`) were set to look plausible (mean ~0.4, about half
the values zero, foreground only partly separable from its own context), not to
favour any loss.

Usage:
  python -m d2net_tf.data.synthetic --preset thumos14 --out DIR [--feature_dim 2048] [--seed 0]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import pickletools
import resource
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Iterable

import numpy as np

from d2net_tf.data.benchmarks import ACTIVITYNET12, I3D_SNIPPETS_PER_SECOND, THUMOS14, BenchmarkSpec, benchmark_for
from d2net_tf.data.wtalc import WtalcAnnotations, read_wtalc_annotations
from d2net_tf.cli import run_cli
from d2net_tf.errors import D2NetInputError

ANNOTATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "annotations")

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

TINY_VALIDATION_CLASSES = ("BaseballPitch", "CliffDiving", "CricketBowling", "Diving", "GolfSwing", "HammerThrow",
                           "PoleVault", "Shotput")
TINY_TEST_CLASSES = ("BaseballPitch", "CricketBowling", "Shotput", "CliffDiving")
TINY_MAX_SNIPPETS = 64

PRESETS: dict[str, tuple[BenchmarkSpec, int]] = {
    # preset: (benchmark whose annotations are used, default feature_dim)
    "thumos14": (THUMOS14, 2048),
    "activitynet12": (ACTIVITYNET12, 2048),
    "tiny": (THUMOS14, 32),
}



@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic feature model (activations are in units of one component's RMS).

    Attributes:
      num_background_components: int, 48. Pool of generic scene components; each video uses a few.
      background_components_per_video: int, 3. Pool components mixed into one video's background.
      background_level: float, 1.0. Total activation of a video's background components.
      num_distractor_components: int, 16. Pool of class-agnostic motion patterns (camera motion,
        people walking) that appear as short bursts in the background.
      num_noise_components: int, 32. Rank of the temporally smooth nuisance.
      component_density: float, 0.3. Fraction of feature dimensions each component touches.
      action_class_weight: float, 0.45. Share of an action's activation on its class-specific
        component.
      action_group_weight: float, 0.25. Share on the component shared by its action group.
      action_variant_weight: float, 0.3. Share on the instance's own mix of its class's
        `variants_per_class` variant components (style / viewpoint of one instance).
      action_motion_weight: float, 0.3. Activation of one random class-agnostic motion component
        (the distractor pool) during each instance: actions contain generic motion too.
      variants_per_class: int, 4. Variant components per class.
      action_strength: float, 0.6. Mean activation of an action inside its segment.
      instance_strength_sigma: float, 0.6. Log-normal sigma of the per-instance strength.
      boundary_ramp_seconds: float, 1.0. Width of the linear ramp centred on each segment boundary.
      ambiguous_strength: float, 0.5. Action strength of THUMOS14 "Ambiguous" segments (class of
        the nearest ground-truth segment of the video).
      context_class_weight: float, 0.5. Share of the context on the class-specific scene component;
        the rest goes to the scene group's component.
      context_background_level: float, 0.5. Context activation everywhere in a video of the class.
      context_near_action_level: float, 0.8. Extra context activation inside a segment, decaying
        as exp(-distance / context_spread_seconds) outside it.
      context_spread_seconds: float, 4.0. Decay length of the near-action context.
      distractor_rate_per_minute: float, 3.0. Poisson rate of motion distractors.
      distractor_seconds: float, 3.0. Mean length of a distractor (exponential).
      distractor_strength: float, 1.0. Activation of a distractor.
      rgb_action_gain: float, 0.5. Gain of action components in the RGB half.
      flow_action_gain: float, 1.0. Gain of action components in the flow half.
      rgb_context_gain: float, 1.0. Gain of context and background components in the RGB half.
      flow_context_gain: float, 0.35. Gain of context and background components in the flow half.
      smooth_noise_std: float, 1.2. Std per feature dimension (before the gains) of the smooth
        nuisance, split evenly over its num_noise_components components.
      temporal_correlation: float, 0.85. AR(1) coefficient per snippet of the smooth nuisance.
      rgb_noise_std: float, 0.35. Per-dimension noise std, RGB half.
      flow_noise_std: float, 0.45. Per-dimension noise std, flow half.
      noise_smoothing: int, 3. The per-dimension noise is a moving average over this many
        snippets (lag-1 correlation (n-1)/n).
      bias: float, -0.1. Pre-activation offset (sets the fraction of zeros after the ReLU).
      scale: float, 0.8. Post-ReLU scale (sets the feature mean, ~0.4).
      num_hashed_groups: int, 20. Groups for datasets without a hand-made grouping (ActivityNet):
        classes are hashed into this many action groups and, independently, scene groups.
    """

    num_background_components: int = 48
    background_components_per_video: int = 3
    background_level: float = 1.0
    num_distractor_components: int = 16
    num_noise_components: int = 32
    component_density: float = 0.3
    action_class_weight: float = 0.45
    action_group_weight: float = 0.25
    action_variant_weight: float = 0.3
    action_motion_weight: float = 0.3
    variants_per_class: int = 4
    action_strength: float = 0.6
    instance_strength_sigma: float = 0.6
    boundary_ramp_seconds: float = 1.0
    ambiguous_strength: float = 0.5
    context_class_weight: float = 0.5
    context_background_level: float = 0.5
    context_near_action_level: float = 0.8
    context_spread_seconds: float = 4.0
    distractor_rate_per_minute: float = 3.0
    distractor_seconds: float = 3.0
    distractor_strength: float = 1.0
    rgb_action_gain: float = 0.5
    flow_action_gain: float = 1.0
    rgb_context_gain: float = 1.0
    flow_context_gain: float = 0.35
    smooth_noise_std: float = 1.2
    temporal_correlation: float = 0.85
    rgb_noise_std: float = 0.35
    flow_noise_std: float = 0.45
    noise_smoothing: int = 3
    bias: float = -0.1
    scale: float = 0.8
    num_hashed_groups: int = 20


# ----------------------------------------------------------------------------- annotations


@dataclasses.dataclass
class _Annotations(WtalcAnnotations):
    """The W-TALC annotations a synthetic set is built on."""

    source_index: np.ndarray = None  # [N] index of each video in the vendored annotations (seeds the RNG)


def _read_annotations(dataset: str) -> _Annotations:
    ann = read_wtalc_annotations(os.path.join(ANNOTATIONS_DIR, f"{dataset}-Annotations"), dataset)
    return _Annotations(**vars(ann), source_index=np.arange(len(ann.videoname)))


def _tiny_annotations(full: _Annotations) -> _Annotations:
    """8 validation + 4 test THUMOS videos, time axis scaled so that T_i <= TINY_MAX_SNIPPETS."""
    picked: list[int] = []
    for subset, classes in (("validation", TINY_VALIDATION_CLASSES), ("test", TINY_TEST_CLASSES)):
        for c in classes:
            cands = [i for i in range(len(full.videoname))
                     if full.subset[i] == subset and c in full.labels_all[i] and i not in picked]
            cands.sort(key=lambda i: (len(set(full.labels_all[i])) > 1, full.duration[i], i))
            picked.append(cands[0])
    max_seconds = TINY_MAX_SNIPPETS / I3D_SNIPPETS_PER_SECOND
    k = np.minimum(1.0, max_seconds / full.duration[picked])
    names = [full.videoname[i] for i in picked]
    scale = dict(zip(names, k))
    return _Annotations(
        dataset=full.dataset,
        videoname=names,
        subset=[full.subset[i] for i in picked],
        duration=np.round(full.duration[picked] * k, 3),
        segments=[[[round(s * kk, 3), round(e * kk, 3)] for s, e in full.segments[i]] for i, kk in zip(picked, k)],
        labels=[list(full.labels[i]) for i in picked],
        labels_all=[list(full.labels_all[i]) for i in picked],
        classlist=list(full.classlist),
        ambiguous=[(v, round(s * scale[v], 3), round(e * scale[v], 3)) for v, s, e in full.ambiguous if v in scale],
        source_index=np.asarray(picked),
        duration_2d=full.duration_2d,
    )


def _object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        out[i] = x
    return out


def _write_annotations(ann: _Annotations, folder: str, copy_from: str | None) -> None:
    os.makedirs(folder)
    if copy_from is not None:  # the real files, byte for byte
        for name in sorted(os.listdir(copy_from)):
            shutil.copyfile(os.path.join(copy_from, name), os.path.join(folder, name))
        return
    n = len(ann.videoname)
    arrays = {
        "videoname": np.array([v.encode() for v in ann.videoname]),
        "subset": np.array([s.encode() for s in ann.subset]),
        "duration": ann.duration.reshape(n, 1) if ann.duration_2d else ann.duration,
        "segments": _object_array(ann.segments),
        "labels": _object_array(ann.labels),
        "labels_all": _object_array(ann.labels_all),
        "classlist": np.array([c.encode() for c in ann.classlist]),
    }
    for name, arr in arrays.items():
        with open(os.path.join(folder, name + ".npy"), "wb") as f:
            np.save(f, arr, allow_pickle=True)
    if ann.ambiguous or benchmark_for(ann.dataset).has_ambiguous:
        with open(os.path.join(folder, "Ambiguous_test.txt"), "w") as f:
            for v, s, e in ann.ambiguous:
                f.write(f"{v}  {s} {e}\n")


# ----------------------------------------------------------------------------- feature model


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


def _build_model(cfg: SyntheticConfig, classlist: list[str], feature_dim: int, seed: int) -> _Model:
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


def _video_features(model: _Model, ann: _Annotations, i: int, class_index: dict[str, int], seed: int) -> np.ndarray:
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


# ----------------------------------------------------------------------------- streaming .npy writer


def write_object_npy(path: str, n: int, items: Iterable[np.ndarray]) -> int:
    """Writes an object array of `n` arrays to a .npy, one item at a time. Returns bytes written.

    The bytes are the pickle `np.save` would write (`np.load(allow_pickle=True)` and
    `safe_npy.load_npy` read it), but only one item is in memory at a time.
    """
    template = np.empty(n, dtype=object)
    payload = pickle.dumps(template, protocol=3)
    ops = list(pickletools.genops(payload))
    names = [op.name for op, _, _ in ops]
    positions = [pos for _, _, pos in ops] + [len(payload)]
    if names.count("EMPTY_LIST") != 1:
        raise RuntimeError("unexpected pickle layout of numpy object arrays; cannot stream")
    j = names.index("EMPTY_LIST") + 1
    if names[j] in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        j += 1
    head = payload[:positions[j]]
    appends = [k for k, name in enumerate(names) if name in ("APPEND", "APPENDS")]
    rest = appends[-1] + 1 if n else j
    tail = payload[positions[rest]:]
    if any(name.endswith("GET") for name in names[rest:]) or not tail.endswith(pickle.STOP):
        raise RuntimeError("unexpected pickle layout of numpy object arrays; cannot stream")
    count = 0
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(template))
        f.write(head)
        for item in items:
            blob = pickle.dumps(item, protocol=3)
            f.write(pickle.MARK + blob[2:-1] + pickle.APPENDS)  # strip PROTO and STOP
            count += 1
        if count != n:
            raise ValueError(f"write_object_npy: expected {n} items, got {count}")
        f.write(tail)
        return f.tell()


# ----------------------------------------------------------------------------- generation


def _dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def generate(
    preset: str,
    out_dir: str,
    feature_dim: int | None = None,
    seed: int = 0,
    *,
    overwrite: bool = False,
    config: SyntheticConfig | None = None,
    log: Callable[[str], None] | None = None,
    **knobs: Any,
) -> dict:
    """Writes a synthetic W-TALC dataset for `preset` into `out_dir`; returns a summary dict.

    Args:
      preset: "thumos14", "activitynet12" or "tiny" (12 short THUMOS videos, D=32).
      out_dir: output folder (created if needed).
      feature_dim: D (even); default from the preset.
      seed: same seed, same bytes.
      overwrite: replace an existing dataset of the same name in out_dir.
      config: a SyntheticConfig; `knobs` override its fields.
      log: progress printer (None: silent).
    """
    if preset not in PRESETS:
        raise D2NetInputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    bench, default_dim = PRESETS[preset]
    dataset = bench.file_prefix
    feature_dim = int(feature_dim or default_dim)
    cfg = config or SyntheticConfig()
    bad = set(knobs) - {f.name for f in dataclasses.fields(SyntheticConfig)}
    if bad:
        raise D2NetInputError(f"unknown SyntheticConfig field(s) {sorted(bad)}")
    cfg = dataclasses.replace(cfg, **knobs)
    log = log or (lambda _: None)
    start = time.perf_counter()

    ann = _read_annotations(dataset)
    if preset == "tiny":
        ann = _tiny_annotations(ann)
    class_index = {c: j for j, c in enumerate(ann.classlist)}
    model = _build_model(cfg, ann.classlist, feature_dim, seed)

    feat_name = f"{dataset}-I3D-JOINTFeatures.npy"
    ann_name = f"{dataset}-Annotations"
    meta_name = f"{dataset}-synthetic.json"
    os.makedirs(out_dir, exist_ok=True)
    existing = [n for n in (feat_name, ann_name, meta_name) if os.path.exists(os.path.join(out_dir, n))]
    if existing and not overwrite:
        raise D2NetInputError(
            f"{out_dir}: already holds a {dataset} dataset ({', '.join(existing)}); pass --overwrite to replace it")

    tmp = tempfile.mkdtemp(prefix=".tmp-synthetic-", dir=out_dir)
    try:
        _write_annotations(ann, os.path.join(tmp, ann_name),
                           None if preset == "tiny" else os.path.join(ANNOTATIONS_DIR, ann_name))
        lengths = num_snippets(ann.duration)
        n = len(ann.videoname)

        def items():
            for i in range(n):
                if log and (i + 1) % 100 == 0:
                    log(f"  {i + 1}/{n} videos")
                yield _video_features(model, ann, i, class_index, seed)

        write_object_npy(os.path.join(tmp, feat_name), n, items())
        meta = {"preset": preset, "dataset": dataset, "seed": seed, "feature_dim": feature_dim,
                "snippets_per_second": bench.snippets_per_second, "config": dataclasses.asdict(cfg),
                "rgb_dims": [0, feature_dim // 2], "flow_dims": [feature_dim // 2, feature_dim]}
        with open(os.path.join(tmp, meta_name), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        # Publish: everything is complete in tmp; move it in.
        for name in (ann_name, meta_name, feat_name):
            dst = os.path.join(out_dir, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            os.replace(os.path.join(tmp, name), dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    subsets: dict[str, int] = {}
    for s in ann.subset:
        subsets[s] = subsets.get(s, 0) + 1
    summary = {
        "dataset": dataset,
        "preset": preset,
        "features": os.path.join(out_dir, feat_name),
        "annotations": os.path.join(out_dir, ann_name),
        "num_videos": len(ann.videoname),
        "videos_per_subset": subsets,
        "total_snippets": int(lengths.sum()),
        "feature_dim": feature_dim,
        "bytes_on_disk": _dir_size(os.path.join(out_dir, feat_name)) + _dir_size(os.path.join(out_dir, ann_name)),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    return summary


@run_cli
def main(argv: list[str]) -> int:
    from absl import flags

    del argv
    flags_ = flags.FLAGS
    summary = generate(flags_.preset, flags_.out, flags_.feature_dim, flags_.seed, overwrite=flags_.overwrite,
                       log=print)
    print(f"wrote {summary['dataset']} ({summary['preset']}) to {flags_.out}")
    print(f"  videos: {summary['num_videos']} " + ", ".join(f"{k}: {v}" for k, v in summary["videos_per_subset"].items()))
    print(f"  snippets: {summary['total_snippets']}  feature_dim: {summary['feature_dim']}")
    print(f"  size on disk: {summary['bytes_on_disk'] / 2**20:.1f} MiB  time: {summary['seconds']:.1f} s  "
          f"peak RSS: {summary['peak_rss_mb']:.0f} MiB")
    return 0


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_enum("preset", "thumos14", sorted(PRESETS), "Which real annotations to put features on.")
    flags.DEFINE_string("out", None, "Output folder.")
    flags.DEFINE_integer("feature_dim", None, "Feature width D (even); default: 2048, or 32 for tiny.")
    flags.DEFINE_integer("seed", 0, "Random seed (same seed, same bytes).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing dataset of the same name in --out.")
    flags.mark_flag_as_required("out")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
