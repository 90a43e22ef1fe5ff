"""MODEL_DIR/config.json: what a trained model directory is, written once by training, read by
every command as one typed record.

config.json holds the method (`D2NetConfig`), the run options (`training.RunConfig` as a
dict), the training data (benchmark dataset name, class names, feature rate) and the
resolved post-processing (`LocalizationConfig`). Evaluation, localization and export all
localize with that stored `LocalizationConfig`, so they agree with each other and with the
selection done during training.

A model directory written before config.json held the `LocalizationConfig` gets one derived
here, once, from the run's own `localization_preset` (default `official`), its dataset and
its `LossConfig.topk_divisor`: what the training job used for it.
"""

from __future__ import annotations

import dataclasses
import os

from d2net_tf.config import D2NetConfig
from d2net_tf.errors import D2NetInputError
from d2net_tf.jsonio import read_json, write_json_atomic
from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.localization import LocalizationConfig, localization_config

CONFIG_NAME = "config.json"


@dataclasses.dataclass(frozen=True)
class ModelDir:
    """A model directory's config.json, parsed and validated.

    Attributes:
      path: str, the directory.
      config: D2NetConfig of the trained model.
      run: dict, the run options (`training.RunConfig` fields; {} when absent).
      localization: LocalizationConfig every command localizes with.
      classlist: tuple of str, class names in class-index order.
      dataset: str, name of the training dataset (e.g. "Thumos14reduced").
      snippets_per_second: float, feature rate of the training data.
    """

    path: str
    config: D2NetConfig
    run: dict
    localization: LocalizationConfig
    classlist: tuple[str, ...]
    dataset: str
    snippets_per_second: float

    @property
    def localization_preset(self) -> str:
        """The preset the run was trained and selected with (official | paper)."""
        return self.run.get("localization_preset", "official")

    def localization_for(self, preset: str | None = None) -> LocalizationConfig:
        """The stored `localization`, or with `preset` given the settings of that preset for this
        model's dataset and top-k divisor (a command's explicit --localization flag)."""
        if preset is None:
            return self.localization
        return localization_config(preset, self.dataset, self.config.loss.topk_divisor)

    def to_json(self) -> dict:
        return {"config": self.config.to_dict(), "run": dict(self.run), "dataset": self.dataset,
                "classlist": list(self.classlist), "snippets_per_second": self.snippets_per_second,
                "localization": self.localization.to_dict()}


def read_model_dir(model_dir: str) -> ModelDir:
    """The record of MODEL_DIR/config.json; a missing or malformed file is one clear error."""
    path = os.path.join(model_dir, CONFIG_NAME)
    if not os.path.exists(path):
        raise D2NetInputError(f"{model_dir}: not a model directory (no {CONFIG_NAME})")
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise D2NetInputError(f"{path}: expected an object with a 'config' object (written by d2net-fit)")
    try:
        cfg = D2NetConfig.from_dict(record["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise D2NetInputError(f"{path}: invalid 'config' ({e})")
    run = record.get("run") or {}
    dataset = record.get("dataset", "thumos14")
    if "localization" in record:
        try:
            loc = LocalizationConfig.from_dict(record["localization"])
        except (TypeError, ValueError) as e:
            raise D2NetInputError(f"{path}: invalid 'localization' ({e})")
    else:  # written before config.json held it: what the training job derived
        loc = localization_config(run.get("localization_preset", "official"), dataset, cfg.loss.topk_divisor)
    classlist = record.get("classlist") or [f"class_{i}" for i in range(cfg.model.num_classes)]
    return ModelDir(path=model_dir, config=cfg, run=run, localization=loc, classlist=tuple(str(c) for c in classlist),
                    dataset=dataset,
                    snippets_per_second=float(record.get("snippets_per_second", I3D_SNIPPETS_PER_SECOND)))


def create_model_dir(model_dir: str, config: D2NetConfig, run: dict, dataset: str, classlist,
                     snippets_per_second: float, localization: LocalizationConfig, write: bool = True) -> ModelDir:
    """Writes MODEL_DIR/config.json for a training job (atomically) and returns its record.

    A directory that already holds a run of another `config` is refused (D2NetInputError,
    nothing overwritten): resuming continues the same run only. `write=False` (the non-chief
    workers of a multi-worker job, which do not own MODEL_DIR) only returns the record.
    """
    record = ModelDir(path=model_dir, config=config, run=dict(run), localization=localization,
                      classlist=tuple(str(c) for c in classlist), dataset=dataset,
                      snippets_per_second=float(snippets_per_second))
    if not write:
        return record
    data = record.to_json()
    path = os.path.join(model_dir, CONFIG_NAME)
    if os.path.exists(path):
        old = read_json(path)
        if not isinstance(old, dict) or old.get("config") != data["config"]:
            raise D2NetInputError(
                f"{path}: MODEL_DIR holds a run with a different configuration; "
                "use a new --model_dir (nothing was overwritten)"
            )
    write_json_atomic(path, data)
    return record
