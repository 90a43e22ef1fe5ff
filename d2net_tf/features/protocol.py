"""The feature-extraction protocol of the public W-TALC I3D features, as numbers.

Sources: the kinetics-i3d README (25 fps; RGB resized so the shorter side is 256 pixels with
bilinear interpolation, center 224x224 crop, scaled to [-1, 1]; flow: grayscale, TV-L1,
truncated to [-20, 20], rescaled to [-1, 1], first two channels, same crop as RGB) and the
W-TALC paper (non-overlapping 16-frame snippets, Mixed_5c averaged to 1024 per stream,
RGB followed by flow). Choices where they are silent are in BUILD.md ("Video features").
"""

from __future__ import annotations

import math

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND

SNIPPET_FRAMES = 16
# The snippet rate (25/16 snippets per second) lives in d2net_tf.data.benchmarks; the frame rate follows.
FPS = I3D_SNIPPETS_PER_SECOND * SNIPPET_FRAMES
SHORT_SIDE = 256
CROP = 224
FLOW_BOUND = 20.0
STREAM_CHANNELS = {"rgb": 3, "flow": 2}
STREAM_DIM = 1024  # Mixed_5c channels
FEATURE_DIM = 2 * STREAM_DIM


def frames_at_fps(duration_s: float, fps: float = FPS) -> int:
    """Frames of a video of `duration_s` seconds resampled to `fps`: the frame times k / fps
    that fall before the end of the video (ceil, with a tolerance for float rounding)."""
    return max(0, math.ceil(duration_s * fps - 1e-6))


def snippet_count(frames: int) -> int:
    """Non-overlapping 16-frame snippets; the last partial snippet is dropped."""
    return frames // SNIPPET_FRAMES


def resized_size(width: int, height: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to `short_side`, aspect ratio kept (rounded)."""
    scale = short_side / min(width, height)
    return max(short_side, round(width * scale)), max(short_side, round(height * scale))


def center_crop_box(width: int, height: int, crop: int = CROP) -> tuple[int, int]:
    """(x0, y0) of the centered crop x crop window (floor of the margin halves)."""
    return (width - crop) // 2, (height - crop) // 2


def crop_center(image, crop: int = CROP):
    """The centered crop x crop window of an [H, W, ...] array (a view)."""
    h, w = image.shape[:2]
    x0, y0 = center_crop_box(w, h, crop)
    return image[y0:y0 + crop, x0:x0 + crop]
