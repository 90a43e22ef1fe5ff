"""Serving: the exported SavedModel module of a trained D2Net.

`ServingModule` wraps a trained D2Net (x_ref included, classlist baked in as a
constant) with two signatures:

  serving_default(features [B, T, D] float32, lengths [B] int32)
      -> tcam [B, T, C], attention [B, T], video_scores [B, C], embeddings [B, T, D/2]
  localize(features [T, D] float32, snippets_per_second [] float64)
      -> class_ids [n] int32, class_names [n] string, starts_s [n] float64,
         ends_s [n] float64, scores [n] float64

`export_saved_model` writes the TF Serving layout EXPORT/N atomically.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import re
import shutil
import tempfile
from typing import Callable, Sequence

import tensorflow as tf

from d2net_tf.errors import D2NetInputError
from d2net_tf.localization import LocalizationConfig
from d2net_tf.localization.tf_ops import localize_tf

SERVING_SIGNATURE = "serving_default"
LOCALIZE_SIGNATURE = "localize"
SERVING_OUTPUTS = ("tcam", "attention", "video_scores", "embeddings")
LOCALIZE_OUTPUTS = ("class_ids", "class_names", "starts_s", "ends_s", "scores")


# --------------------------------------------------------------------------- #
# Exported module
# --------------------------------------------------------------------------- #
class ServingModule(tf.Module):
    """A trained D2Net with the `serving_default` and `localize` signatures.

    Args:
      model: built D2Net (its variables, x_ref included, are tracked and saved).
      classlist: sequence of str class names (baked in as a constant).
      localization: LocalizationConfig used by `localize` (static).
    """

    def __init__(self, model, classlist: Sequence[str], localization: LocalizationConfig):
        super().__init__(name="d2net_serving")
        # Track the network's variables only (x_ref included, the optimizer slots not): the
        # model itself sits behind a closure, which tf.Module does not track.
        self._forward = lambda features, mask: model(features, snippet_mask=mask, training=False)
        self.model_variables = [getattr(v, "value", v) for v in model.weights]
        self.classlist = [str(c) for c in classlist]
        if len(self.classlist) != model.mcfg.num_classes:
            raise D2NetInputError(
                f"classlist has {len(self.classlist)} names, the model has {model.mcfg.num_classes} classes"
            )
        self.localization = localization
        d = model.mcfg.feature_dim
        self.serve = tf.function(
            self._serve, autograph=False,
            input_signature=[tf.TensorSpec([None, None, d], tf.float32, name="features"),
                             tf.TensorSpec([None], tf.int32, name="lengths")],
        )
        self.localize = tf.function(
            self._localize, autograph=False,
            input_signature=[tf.TensorSpec([None, d], tf.float32, name="features"),
                             tf.TensorSpec([], tf.float64, name="snippets_per_second")],
        )

    def _serve(self, features, lengths):
        mask = tf.sequence_mask(lengths, tf.shape(features)[1], dtype=tf.float32)
        out = self._forward(features, mask)
        return {k: tf.identity(out[k], name=k) for k in SERVING_OUTPUTS}

    def _localize(self, features, snippets_per_second):
        tf.debugging.assert_positive(snippets_per_second, message="snippets_per_second must be > 0")
        out = self._forward(features[None], tf.ones([1, tf.shape(features)[0]], tf.float32))
        tcam = tf.debugging.assert_all_finite(out["tcam"][0], "tcam must be finite (NaN/inf in features?)")
        det = localize_tf(tcam, out["attention"][0], snippets_per_second, self.localization)
        names = tf.constant(self.classlist, dtype=tf.string)
        det["class_names"] = tf.gather(names, det["class_ids"])
        return {k: tf.identity(det[k], name=k) for k in LOCALIZE_OUTPUTS}

    def signatures(self) -> dict:
        return {SERVING_SIGNATURE: self.serve.get_concrete_function(),
                LOCALIZE_SIGNATURE: self.localize.get_concrete_function()}


def read_model_dir(model_dir: str, preset: str | None = None, which: str = "best"):
    """(model, classlist, LocalizationConfig, record) of a trained MODEL_DIR.

    `preset` (official | paper) defaults to the run's `localization_preset`.
    """
    from d2net_tf.training import localization_config, restore_model

    model, cfg = restore_model(model_dir, which=which)
    with open(os.path.join(model_dir, "config.json")) as f:
        record = json.load(f)
    classlist = record.get("classlist") or [f"class_{i}" for i in range(cfg.model.num_classes)]
    preset = preset or record.get("run", {}).get("localization_preset", "official")
    if preset not in ("official", "paper"):
        raise D2NetInputError(f"localization preset must be 'official' or 'paper', got {preset!r}")
    loc = localization_config(preset, record.get("dataset", "thumos14"), cfg.loss.topk_divisor)
    return model, classlist, loc, record


def existing_versions(export_dir: str) -> list[int]:
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(n) for n in os.listdir(export_dir) if re.fullmatch(r"\d+", n))


def export_saved_model(module: ServingModule, export_dir: str, version: int | None = None) -> str:
    """Writes `module` as EXPORT/N (TF Serving layout); returns the version folder.

    Written into a temporary folder inside EXPORT and renamed, so a failed export leaves
    nothing behind. An existing version is never overwritten (FileExistsError).
    Default version: 1 + the largest existing one (1 for a new EXPORT).
    """
    if version is None:
        version = max(existing_versions(export_dir), default=0) + 1
    if version < 0:
        raise D2NetInputError(f"--version must be >= 0, got {version}")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} already exists; choose another --version (nothing was overwritten)")
    os.makedirs(export_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=export_dir, prefix=f".tmp-{version}-")
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        if os.path.exists(final):
            raise FileExistsError(f"{final} appeared during the export (nothing was overwritten)")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export_file(model_dir: str, output: str, which: str, convert: Callable[..., bytes]) -> int:
    """Restores MODEL_DIR's `which` checkpoint, converts it with `convert` (model -> file bytes:
    TFLite, ONNX) and writes OUTPUT atomically. Returns the size in bytes."""
    from d2net_tf.training import restore_model

    if not model_dir or not output:
        raise D2NetInputError("--model_dir and --output are required")
    model, _ = restore_model(model_dir, which=which)
    data = convert(model)
    atomic_write_bytes(output, data)
    return len(data)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes `data` through a temporary file in the same folder and os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
