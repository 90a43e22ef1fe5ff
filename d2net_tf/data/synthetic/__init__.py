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

Modules: config.py (SyntheticConfig), annotations.py (the real annotations, the tiny set),
features.py (the feature model), npy_writer.py (streaming object .npy), generator.py
(`generate`). The command line is d2net_tf.cli.synthetic (`d2net-synthetic`).
"""

from d2net_tf.data.synthetic.annotations import TINY_MAX_SNIPPETS, TINY_TEST_CLASSES, TINY_VALIDATION_CLASSES
from d2net_tf.data.synthetic.config import SyntheticConfig
from d2net_tf.data.synthetic.features import num_snippets, segment_snippets
from d2net_tf.data.synthetic.generator import PRESETS, generate
from d2net_tf.data.synthetic.npy_writer import write_object_npy

__all__ = [
    "PRESETS",
    "SyntheticConfig",
    "TINY_MAX_SNIPPETS",
    "TINY_TEST_CLASSES",
    "TINY_VALIDATION_CLASSES",
    "generate",
    "num_snippets",
    "segment_snippets",
    "write_object_npy",
]
