"""TV-L1 optical flow (OpenCV contrib's DualTVL1), as the I3D flow stream expects it."""

from __future__ import annotations

import numpy as np

from d2net_tf.errors import D2NetInputError
from d2net_tf.features import protocol
from d2net_tf.features.video import require


class TVL1:
    """Dense TV-L1 flow between two grayscale uint8 frames, OpenCV's default parameters
    (tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01, 30 inner / 10 outer
    iterations, scale step 0.8, median filtering 5).

    `flow(a, b)` is float32 [H, W, 2]: channel 0 = horizontal (x, + right), channel 1 = vertical
    (y, + down) displacement in pixels such that b(p + flow(p)) ~ a(p).
    """

    def __init__(self):
        cv2 = require("cv2")
        if not hasattr(cv2, "optflow") or not hasattr(cv2.optflow, "DualTVL1OpticalFlow_create"):
            raise D2NetInputError(
                "this OpenCV has no TV-L1 flow (cv2.optflow comes with opencv-contrib-python-headless; "
                "uninstall opencv-python / opencv-python-headless, which shadow it)")
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()

    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._tvl1.calc(a, b, None)


def scale_flow(flow: np.ndarray, bound: float = protocol.FLOW_BOUND) -> np.ndarray:
    """Truncated to [-bound, bound] and rescaled to [-1, 1] (float32)."""
    return (np.clip(flow, -bound, bound) / bound).astype(np.float32)

