"""The streaming pipeline video -> [snippets, 2048] features, and the per-video output layout.

A video is processed in chunks of `batch_snippets` snippets (16 frames each, plus the next
frame for the last flow), so memory does not grow with the video's length. Stages, each with its
progress bar and its accumulated time (`FeatureExtractor.timings`):
  decode    PyAV decoding, resampling to 25 fps, bilinear resize (shorter side 256), crop, gray
  flow      TV-L1 between consecutive 25-fps frames (full resized frame), clip, scale, crop
  rgb_i3d   RGB I3D on [chunk, 16, 224, 224, 3] in [-1, 1]
  flow_i3d  flow I3D on [chunk, 16, 224, 224, 2]
Snippet i holds frames 16i..16i+15 and the flows from each of them to the next frame; the
video's last frame has no next frame, so (when it closes a snippet) its flow repeats the
previous one. A last partial snippet is dropped.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.errors import D2NetInputError, DataFormatError
from d2net_tf.features import protocol
from d2net_tf.features.flow import TVL1, scale_flow
from d2net_tf.features.video import Decoded, VideoError, require
from d2net_tf.jsonio import read_json, write_json_atomic
from d2net_tf.precision import check_precision

STAGES = ("decode", "flow", "rgb_i3d", "flow_i3d")


@dataclass
class VideoFeatures:
    features: np.ndarray  # float32 [snippets, 2048]: RGB 1024 then flow 1024
    duration: float  # seconds of source video
    frames: int  # frames at 25 fps
    source_fps: float


class _Bars:
    """One tqdm bar per stage (positions below an optional outer bar); no-ops when disabled."""

    def __init__(self, enabled: bool, vid: str, frames: int, position: int):
        self.bars = {}
        if enabled:
            tqdm = require("tqdm").tqdm
            snippets = protocol.snippet_count(frames)
            totals = {"decode": (frames, "frame"), "flow": (frames, "frame"), "rgb_i3d": (snippets, "snippet"),
                      "flow_i3d": (snippets, "snippet")}
            for i, stage in enumerate(STAGES):
                total, unit = totals[stage]
                self.bars[stage] = tqdm(total=total or None, unit=unit, desc=f"{stage:8s} {vid}"[:40],
                                        position=position + i, leave=False, dynamic_ncols=True)

    def update(self, stage: str, n: int):
        if stage in self.bars:
            self.bars[stage].update(n)

    def close(self):
        for bar in self.bars.values():
            bar.close()


class FeatureExtractor:
    """Runs the protocol with two InceptionI3d models (RGB, flow); see the module docstring.

    `reference` (optional): float32 (rgb, flow) models; on the first chunk extracted their
    features are compared with the main models' (for --precision=mixed_bfloat16) and the error
    is kept in `precision_error`.
    """

    def __init__(self, rgb_model, flow_model, *, short_side: int = protocol.SHORT_SIDE, crop: int = protocol.CROP,
                 batch_snippets: int = 4, progress: bool = False, reference=None):
        import tensorflow as tf

        if batch_snippets < 1:
            raise D2NetInputError(f"batch_snippets must be >= 1, got {batch_snippets}")
        self.short_side, self.crop, self.batch, self.progress = short_side, crop, batch_snippets, progress
        self.tvl1 = TVL1()
        self.timings = dict.fromkeys(STAGES, 0.0)
        self.seconds_of_video = 0.0
        self.snippets = 0
        self.precision_error: dict | None = None

        def compiled(model, channels):
            spec = tf.TensorSpec([None, protocol.SNIPPET_FRAMES, crop, crop, channels], tf.float32)
            return tf.function(lambda x: tf.cast(model(x), tf.float32), input_signature=[spec])

        self._rgb = compiled(rgb_model, protocol.STREAM_CHANNELS["rgb"])
        self._flow = compiled(flow_model, protocol.STREAM_CHANNELS["flow"])
        self._reference = None
        if reference is not None:
            self._reference = (compiled(reference[0], protocol.STREAM_CHANNELS["rgb"]),
                               compiled(reference[1], protocol.STREAM_CHANNELS["flow"]))

    @classmethod
    def from_weights(cls, rgb_weights: str | None, flow_weights: str | None, precision: str = "float32", **kwargs):
        from d2net_tf.features.i3d import load_i3d

        check_precision(precision, "--precision")
        models = load_i3d(rgb_weights, "rgb", precision), load_i3d(flow_weights, "flow", precision)
        if precision != "float32" and "reference" not in kwargs:
            kwargs["reference"] = (load_i3d(rgb_weights, "rgb"), load_i3d(flow_weights, "flow"))
        return cls(*models, **kwargs)

    def warm_up(self) -> None:
        """Traces the I3D functions (one batch of zeros), so that timings exclude tracing."""
        for fn, channels in ((self._rgb, 3), (self._flow, 2)):
            fn(np.zeros((self.batch, protocol.SNIPPET_FRAMES, self.crop, self.crop, channels), np.float32))

    def _timed(self, stage, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.timings[stage] += time.perf_counter() - t0
        return out

    def _flows(self, frames, count: int) -> np.ndarray:
        out = np.empty((count, self.crop, self.crop, 2), np.float32)
        for t in range(count):
            if t + 1 < len(frames):
                out[t] = protocol.crop_center(scale_flow(self.tvl1.flow(frames[t].gray, frames[t + 1].gray)), self.crop)
            else:  # the video's last frame: no next frame
                out[t] = out[t - 1]
        return out

    def extract(self, path: str, video_id: str | None = None, position: int = 0) -> VideoFeatures:
        decoded = Decoded(path, self.short_side, self.crop)
        vid = video_id or os.path.splitext(os.path.basename(path))[0]
        bars = _Bars(self.progress, vid, decoded.info.expected_frames(), position)
        try:
            feats = self._run(decoded, bars)
        finally:
            bars.close()
        if not feats:
            raise VideoError(f"{path}: {decoded.frames} frames at {protocol.FPS:g} fps ({decoded.duration:.2f} s), "
                             f"fewer than one {protocol.SNIPPET_FRAMES}-frame snippet")
        features = np.concatenate(feats)
        self.seconds_of_video += decoded.duration
        self.snippets += len(features)
        return VideoFeatures(features, decoded.duration, decoded.frames, decoded.info.fps)

    def _run(self, decoded: Decoded, bars: _Bars) -> list[np.ndarray]:
        frames_iter, buf, done, feats = iter(decoded), [], False, []
        chunk = protocol.SNIPPET_FRAMES * self.batch
        while not done:
            t0 = time.perf_counter()
            while len(buf) < chunk + 1:
                try:
                    buf.append(next(frames_iter))
                except StopIteration:
                    done = True
                    break
            self.timings["decode"] += time.perf_counter() - t0
            bars.update("decode", len(buf) - (1 if feats else 0))
            n = protocol.snippet_count(len(buf)) if done else self.batch
            if n == 0:
                break
            used = n * protocol.SNIPPET_FRAMES
            flows = self._timed("flow", self._flows, buf, used)
            bars.update("flow", used)
            shape = (n, protocol.SNIPPET_FRAMES, self.crop, self.crop)
            rgb = np.stack([f.rgb for f in buf[:used]]).reshape(*shape, 3).astype(np.float32) / 127.5 - 1.0
            flows = flows.reshape(*shape, 2)
            f_rgb = self._timed("rgb_i3d", lambda: self._rgb(rgb).numpy())
            bars.update("rgb_i3d", n)
            f_flow = self._timed("flow_i3d", lambda: self._flow(flows).numpy())
            bars.update("flow_i3d", n)
            feats.append(np.concatenate([f_rgb, f_flow], axis=1))
            if self._reference is not None and self.precision_error is None:
                self.precision_error = feature_error(
                    feats[-1], np.concatenate([self._reference[0](rgb).numpy(), self._reference[1](flows).numpy()], 1))
            buf = buf[used:]
        return feats


def feature_error(features: np.ndarray, reference: np.ndarray) -> dict:
    """Max absolute and relative L2 (||a - b|| / ||b||) error of features against a reference."""
    diff = features.astype(np.float64) - reference
    return {"snippets": int(len(reference)), "max_abs": float(np.abs(diff).max()),
            "relative_l2": float(np.linalg.norm(diff) / max(np.linalg.norm(reference), 1e-30)),
            "reference_max_abs": float(np.abs(reference).max())}


def save_npy_atomic(path: str, array: np.ndarray) -> None:
    """np.save through a temporary file in the same folder and a rename: never a half-written .npy."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-", suffix=".npy.part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class FeatureStore:
    """The per-video layout `d2net_tf.data.per_video` reads (and `--data_layout=per_video`):

      OUT/features/{video_id}.npy   float32 [snippets, 2048]
      OUT/ground_truth.json         {"database": {vid: {"subset", "duration", "annotations": [], ...}},
                                     "snippets_per_second": 1.5625}

    An existing ground_truth.json is kept: its annotations and other entries stay; extracted videos
    get (or update) their duration. A video counts as done when its .npy exists and its entry has a
    duration, so an interrupted run resumes where it stopped.
    """

    def __init__(self, out_dir: str, subset: str = "test"):
        self.out_dir, self.subset = out_dir, subset
        self.feature_dir = os.path.join(out_dir, "features")
        self.json_path = os.path.join(out_dir, "ground_truth.json")
        os.makedirs(self.feature_dir, exist_ok=True)
        if os.path.exists(self.json_path):
            self.data = read_json(self.json_path)
            if not isinstance(self.data, dict) or not isinstance(self.data.get("database"), dict):
                raise DataFormatError(f"{self.json_path}: expected an ActivityNet-style object with a 'database'")
            sps = self.data.setdefault("snippets_per_second", I3D_SNIPPETS_PER_SECOND)
            if abs(float(sps) - I3D_SNIPPETS_PER_SECOND) > 1e-9:
                raise DataFormatError(f"{self.json_path}: snippets_per_second {sps}, but extracted features have "
                                      f"{I3D_SNIPPETS_PER_SECOND}")
        else:
            self.data = {"database": {}, "snippets_per_second": I3D_SNIPPETS_PER_SECOND}

    def feature_path(self, vid: str) -> str:
        return os.path.join(self.feature_dir, f"{vid}.npy")

    def done(self, vid: str) -> bool:
        entry = self.data["database"].get(vid)
        return os.path.exists(self.feature_path(vid)) and isinstance(entry, dict) and "duration" in entry

    def add(self, vid: str, result: VideoFeatures) -> None:
        save_npy_atomic(self.feature_path(vid), result.features.astype(np.float32))
        entry = self.data["database"].setdefault(vid, {})
        entry.setdefault("subset", self.subset)
        entry.setdefault("annotations", [])
        entry.update(duration=round(result.duration, 6), snippets=int(len(result.features)),
                     source_fps=round(result.source_fps, 6))
        write_json_atomic(self.json_path, self.data)



def extract_videos(extractor: FeatureExtractor, videos: list[tuple[str, str]], store: FeatureStore,
                   on_error: str = "stop", warn=None) -> list[str]:
    """Extracts each (video_id, path) into `store`, with a progress bar over the videos.

    A video that cannot be decoded (VideoError) stops the run (on_error="stop") or is skipped
    with `warn(message)` (on_error="skip"). Returns the ids of the skipped videos.
    """
    import sys

    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    outer = require("tqdm").tqdm(total=len(videos), unit="video", desc="videos", disable=not extractor.progress,
                                 position=0, dynamic_ncols=True)
    failed = []
    for vid, path in videos:
        try:
            result = extractor.extract(path, vid, position=1)
        except VideoError as e:
            if on_error == "stop":
                raise
            failed.append(vid)
            warn(f"skipped: {e}")
            continue
        finally:
            outer.update(1)
        store.add(vid, result)
    outer.close()
    return failed
