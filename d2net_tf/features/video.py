"""Video decoding with PyAV: frames resampled to 25 fps, resized (shorter side 256) and cropped.

Every way a file can fail to give frames (not a video, corrupt, empty, no video stream, fewer
frames than one snippet) raises `VideoError` naming the file; command lines print it as one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from d2net_tf.errors import D2NetInputError
from d2net_tf.features import protocol

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts")


class VideoError(D2NetInputError):
    """A video file that cannot be decoded into frames."""


def require(module: str):
    """Imports one of the `video` extra's packages or stops with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"av": "av", "cv2": "opencv-contrib-python-headless", "tqdm": "tqdm"}[module]
        raise D2NetInputError(
            f"video features need the package {package!r}: pip install -e \".[video]\"") from None


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float  # the stream's average frame rate
    frames: int  # frame count the container declares (0 when unknown)
    duration: float  # seconds the container declares (0 when unknown)

    def expected_frames(self) -> int:
        """Frames at 25 fps from the declared length (a progress-bar total; decoding decides)."""
        seconds = self.duration or (self.frames / self.fps if self.fps else 0.0)
        return protocol.frames_at_fps(seconds)


@dataclass
class Frame:
    """One frame at 25 fps: the cropped RGB image and the full resized grayscale image (for flow)."""
    rgb: np.ndarray  # uint8 [crop, crop, 3]
    gray: np.ndarray  # uint8 [short-side height, width]


def _open(path: str):
    av = require("av")
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: empty file (0 bytes), not a video")
    try:
        container = av.open(path)
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({_reason(e)})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(f"{path}: no video stream (streams: {', '.join(kinds)})")
    return container


def _reason(e: Exception) -> str:
    return (getattr(e, "strerror", None) or str(e)).splitlines()[0]


def probe(path: str) -> VideoInfo:
    """The video stream's size, rate and declared length, without decoding."""
    container = _open(path)
    with container:
        s = container.streams.video[0]
        rate = s.average_rate or s.guessed_rate or s.base_rate
        duration = float(s.duration * s.time_base) if s.duration and s.time_base else 0.0
        if not duration and container.duration:
            duration = container.duration / 1e6
        return VideoInfo(path, s.codec_context.width, s.codec_context.height, float(rate) if rate else 0.0,
                         int(s.frames or 0), duration)


class Decoded:
    """Iterates a video's frames resampled to 25 fps (`Frame`s); after the loop, `duration`
    (seconds of source video) and `frames` (25-fps frames produced) are set.

    Resampling: output frame k (time k / 25 s from the first frame) is the source frame nearest
    in time (presentation timestamps, so variable frame rates work); the video ends one source
    frame period after its last frame, so a 25 fps video keeps every frame and a video of
    N frames at r fps gives ceil(N * 25 / r) frames.
    """

    def __init__(self, path: str, short_side: int = protocol.SHORT_SIDE, crop: int = protocol.CROP):
        if crop > short_side:
            raise D2NetInputError(f"crop {crop} is larger than the resized shorter side {short_side}")
        self.path, self.short_side, self.crop = path, short_side, crop
        self.info = probe(path)
        self.duration = 0.0
        self.frames = 0

    def _convert(self, frame) -> Frame:
        w, h = protocol.resized_size(frame.width, frame.height, self.short_side)
        rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()
        cv2 = require("cv2")
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return Frame(np.ascontiguousarray(protocol.crop_center(rgb, self.crop)), gray)

    def _source_frames(self) -> Iterator[tuple[float, object]]:
        av = require("av")
        container = _open(self.path)
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            period = 1.0 / self.info.fps if self.info.fps else 1.0 / protocol.FPS
            index = 0
            try:
                for frame in container.decode(stream):
                    t = frame.time if frame.time is not None else index * period
                    index += 1
                    yield t, frame
            except av.FFmpegError as e:
                raise VideoError(f"{self.path}: corrupt video, decoding stopped after {index} frames "
                                 f"({_reason(e)})") from None
            if index == 0:
                raise VideoError(f"{self.path}: the video stream has no frames (zero-length video)")
            self._period = period

    def __iter__(self) -> Iterator[Frame]:
        step = 1.0 / protocol.FPS
        k, t0 = 0, None
        prev_t, prev, cached = None, None, None  # previous source frame and its conversion
        for t, frame in self._source_frames():
            if t0 is None:
                t0 = t
            t -= t0
            if prev is not None:
                middle = 0.5 * (prev_t + t)
                while k * step < middle - 1e-9:  # output times nearer to the previous frame
                    cached = cached or self._convert(prev)
                    yield cached
                    k += 1
            if prev_t is not None and t <= prev_t:
                continue  # a repeated or out-of-order timestamp: keep the earlier frame
            prev_t, prev, cached = t, frame, None
        self.duration = prev_t + self._period
        while k < protocol.frames_at_fps(self.duration):
            cached = cached or self._convert(prev)
            yield cached
            k += 1
        self.frames = k


def list_videos(path: str) -> list[tuple[str, str]]:
    """(video_id, file) pairs of a video file or of the videos in a folder (id = file name stem)."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(VIDEO_EXTENSIONS))
        if not files:
            raise D2NetInputError(f"{path}: no video files in this folder (extensions: {' '.join(VIDEO_EXTENSIONS)})")
        pairs = [(os.path.splitext(f)[0], os.path.join(path, f)) for f in files]
        seen: dict[str, str] = {}
        for vid, file in pairs:
            if vid in seen:
                raise D2NetInputError(f"{path}: two videos with the id {vid!r}: {seen[vid]} and {file}")
            seen[vid] = file
        return pairs
    if not os.path.exists(path):
        raise D2NetInputError(f"{path}: no such file")
    return [(os.path.splitext(os.path.basename(path))[0], path)]
