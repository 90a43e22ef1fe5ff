"""Flags of the training job (the fit command, benchmarks.ablation) and of the W-TALC evaluator.

Every field of ModelConfig / LossConfig / TrainConfig is a flag of the same name (the
loss variant is `--loss`); unset flags keep the value of `--preset`. Importing this
module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from d2net_tf import config as C
from d2net_tf.config import SELECT_ON
from d2net_tf.cli.data_flags import define_data_flags
from d2net_tf.cli.compute_flags import define_conv_algorithm_flag, define_cpu_allocator_flag, define_precision_flag
from d2net_tf.cpu_runtime import THREAD_POOLS

FLAGS = flags.FLAGS
_SKIP = {"feature_dim", "num_classes"}  # from the data
_RENAME = {"variant": "loss"}


def _define_config_flags() -> None:
    for cls in (C.ModelConfig, C.LossConfig, C.TrainConfig):
        for f in dataclasses.fields(cls):
            if f.name in _SKIP:
                continue
            name = _RENAME.get(f.name, f.name)
            doc = f"{cls.__name__}.{f.name} (default: from --preset)."
            if f.type in ("bool", bool):
                flags.DEFINE_boolean(name, None, doc)
            elif f.type in ("int", int):
                flags.DEFINE_integer(name, None, doc)
            elif f.type in ("float", float):
                flags.DEFINE_float(name, None, doc)
            else:
                flags.DEFINE_string(name, None, doc)


def define_preset_flag() -> None:
    flags.DEFINE_enum("preset", "official", list(C.PRESETS), "official: exactly what the official code computes; "
                      "official_fixed: the official code with this implementation's fixes (README, deviations); "
                      "paper: the paper's settings. Unset flags take the preset's value.")


def define_wtalc_flags() -> None:
    """Options of the W-TALC evaluator (--protocol=wtalc); unset ones take the preset's."""
    flags.DEFINE_boolean("wtalc_class_counter_bug", None, "--protocol=wtalc: reproduce the official getLocMAP's "
                         "class-counter bug (default: from --preset).")
    flags.DEFINE_enum("wtalc_ground_truth", None, ["test_gt_segments", "segments"], "--protocol=wtalc: ground truth "
                      "of the official evaluator (test_gt_segments.npy) or segments.npy (default: from --preset).")
    flags.DEFINE_enum("wtalc_ap", None, ["interpolated", "precision_sum"], "--protocol=wtalc: AP of the official "
                      "evaluator (interpolated) or W-TALC's (default: from --preset).")


def define_training_flags() -> None:
    """Every flag of a training job: data, configuration fields, preset, run options, W-TALC options."""
    define_data_flags()
    _define_config_flags()
    define_preset_flag()
    define_wtalc_flags()
    flags.DEFINE_string("model_dir", None, "Where checkpoints, TensorBoard logs and results.json go.")
    flags.DEFINE_integer("eval_every", 1000, "Evaluate for checkpoint selection every N steps.")
    flags.DEFINE_integer("checkpoint_every", 500, "Save a checkpoint every N steps.")
    flags.DEFINE_enum("select_on", None, list(SELECT_ON), "Checkpoint selection: held-out part of the "
                      "training split (honest), the test split (as the official code; flatters numbers), or the last "
                      "(default: from --preset).")
    flags.DEFINE_float("heldout_fraction", 0.1, "Fraction of the training split held out for --select_on=heldout.")
    flags.DEFINE_enum("protocol", "anet", ["anet", "wtalc"], "Evaluation protocol.")
    flags.DEFINE_enum("localization", "official", ["official", "paper"], "Post-processing preset (Sec. 3.3).")
    flags.DEFINE_boolean("jit_compile", False, "XLA-compile the train step.")
    define_precision_flag("Compute precision of the convolutions.")
    define_conv_algorithm_flag("in the training steps (forward and backward; 'winograd' needs --packed)")
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                      "tf.distribute strategy: mirrored = all local GPUs; multi_worker reads TF_CONFIG; tpu = "
                      "TPUStrategy. The global --batch_size is split across replicas (must be divisible); "
                      "losses are computed on the global batch (BUILD.md, section Scaling).")
    flags.DEFINE_boolean("packed", None, "Pack the videos of a batch into one sequence (no convolution on "
                         "padding; needs --rezero_padding; default: from --preset).")
    flags.DEFINE_enum("cpu_thread_pools", "per_stream", list(THREAD_POOLS), "TensorFlow's CPU thread "
                      "pools: per_stream = 2 inter-op threads x cores/2 intra-op threads (the two streams side by "
                      "side: faster training steps), tensorflow = TensorFlow's defaults (d2net_tf.cpu_runtime; "
                      "BUILD.md 'Thread pools, CPU allocator and kernel time').")
    define_cpu_allocator_flag()
    flags.DEFINE_integer("max_nonfinite_steps", 100, "Stop when more steps than this had non-finite loss/gradients.")
    flags.DEFINE_boolean("deterministic", False, "Also enable TF op determinism. --seed alone "
                         "already fixes initial weights, dropout, batches and pairing, and two runs on one CPU "
                         "give bit-identical weights; GPU kernels need this flag for that (slower on GPU).")
    flags.DEFINE_integer("progress", 1, "Keras progress bar verbosity (0 silent, 1 bar, 2 one line per round).")


def config_from_flags(feature_dim: int, num_classes: int, overrides: dict | None = None) -> C.D2NetConfig:
    """The preset's D2NetConfig with the configuration flags that are set; `overrides` (flag
    name -> value, e.g. {"loss": "ce", "seed": 1}) wins over the flags without changing them."""
    overrides = overrides or {}
    cfg = C.preset(FLAGS.preset, FLAGS.dataset)  # --dataset is one of the benchmark names
    cfg.model.feature_dim, cfg.model.num_classes = feature_dim, num_classes
    for part in (cfg.model, cfg.loss, cfg.train):
        for f in dataclasses.fields(part):
            if f.name in _SKIP:
                continue
            name = _RENAME.get(f.name, f.name)
            value = overrides[name] if name in overrides else getattr(FLAGS, name)
            if value is not None:
                setattr(part, f.name, value)
    try:  # the configs validate themselves; flags were set on them after construction
        return C.D2NetConfig.from_dict(cfg.to_dict())
    except ValueError as e:
        raise flags.ValidationError(str(e))


def wtalc_options_from_flags(defaults: dict | None = None) -> dict:
    """The --protocol=wtalc options: flags that are set, else `defaults`, else the preset's."""
    options = {k: v for k, v in C.run_preset(FLAGS.preset).items() if k in C.WTALC_OPTIONS}
    options.update({k: v for k, v in (defaults or {}).items() if k in C.WTALC_OPTIONS})
    options.update({k: getattr(FLAGS, k) for k in C.WTALC_OPTIONS if getattr(FLAGS, k) is not None})
    return options


def run_config_from_flags(model_dir: str, **overrides):
    """The RunConfig (d2net_tf.training) named by the flags, for `model_dir`."""
    from d2net_tf.training import RunConfig  # imports TensorFlow

    fields = C.run_preset(FLAGS.preset)
    for name in list(fields):
        if getattr(FLAGS, name) is not None:
            fields[name] = getattr(FLAGS, name)
    fields.update(
        model_dir=model_dir, eval_every=FLAGS.eval_every, checkpoint_every=FLAGS.checkpoint_every,
        heldout_fraction=FLAGS.heldout_fraction, protocol=FLAGS.protocol,
        localization_preset=FLAGS.localization, jit_compile=FLAGS.jit_compile, precision=FLAGS.precision,
        conv_algorithm=FLAGS.conv_algorithm,
        strategy=FLAGS.strategy, max_nonfinite_steps=FLAGS.max_nonfinite_steps,
        deterministic=FLAGS.deterministic, verbose=FLAGS.progress,
    )
    fields.update(overrides)
    return RunConfig(**fields)
