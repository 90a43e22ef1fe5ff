"""A trained model directory as a TF Serving SavedModel, EXPORT/N, written atomically.

Signatures: those of `d2net_tf.serving.ServingModule` (`serving_default`, `localize`); the
`localize` signature uses the model directory's stored LocalizationConfig unless a preset
is named.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import tensorflow as tf

from d2net_tf.errors import D2NetInputError
from d2net_tf.model_dir import restore_network
from d2net_tf.serving import ServingModule


def existing_versions(export_dir: str) -> list[int]:
    """The numeric version folders of EXPORT, ascending."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(n) for n in os.listdir(export_dir) if re.fullmatch(r"\d+", n))


def version_folder(export_dir: str, version: int) -> str:
    """EXPORT/VERSION, refusing a version that already exists (FileExistsError: nothing is overwritten)."""
    if version < 0:
        raise D2NetInputError(f"--version must be >= 0, got {version}")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} already exists; choose another --version (nothing was overwritten)")
    return final


def write_saved_model(module: ServingModule, export_dir: str, version: int | None = None) -> str:
    """Writes `module` as EXPORT/N (TF Serving layout); returns the version folder.

    Written into a temporary folder inside EXPORT and renamed, so a failed export leaves
    nothing behind. An existing version is never overwritten (FileExistsError).
    Default version: 1 + the largest existing one (1 for a new EXPORT).
    """
    if version is None:
        version = max(existing_versions(export_dir), default=0) + 1
    final = version_folder(export_dir, version)
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


def export_saved_model(model_dir: str, export_dir: str, version: int | None = None, preset: str | None = None,
                       which: str = "best") -> str:
    """Exports MODEL_DIR's `which` checkpoint into EXPORT/VERSION; returns the version folder.

    `preset` (official | paper): post-processing of the `localize` signature; default the
    LocalizationConfig stored in the model directory.
    """
    if not model_dir or not export_dir:
        raise D2NetInputError("--model_dir and --export_dir are required")
    if version is not None:  # before the (slow) restore
        version_folder(export_dir, version)
    network, record = restore_network(model_dir, which)
    module = ServingModule(network, record.classlist, record.localization_for(preset))
    return write_saved_model(module, export_dir, version)
