"""train_and_evaluate: the whole training job behind the fit command (`d2net-fit`).

Checkpoints (`MODEL_DIR/ckpt-*`, tf.train.CheckpointManager) hold the weights, the
optimizer state, x_ref and the step counter; the training batches are a pure function
of (seed, step), so a restarted job resumes exactly where the last checkpoint was taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import tempfile
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from d2net_tf.config import RUN_PRESETS, SELECT_ON, WTALC_OPTIONS, D2NetConfig
from d2net_tf.data.dataset import VideoDataset
from d2net_tf.distribute import distributed_training_dataset, is_chief, make_strategy
from d2net_tf.errors import D2NetInputError
from d2net_tf.jsonio import read_json, write_json_atomic
from d2net_tf.localization import localization_config
from d2net_tf.inference import evaluate_model
from d2net_tf.model_dir import (
    ModelDirLock,
    create_model_dir,
    remove_stale_temp_checkpoints,
    save_checkpoint,
    save_once,
    training_checkpoint,
)
from d2net_tf.optimizers import FusedAdam, FusedAdamW
from d2net_tf.modeling.winograd import check_conv_algorithm
from d2net_tf.precision import check_precision, dtype_policy
from d2net_tf.task import D2NetTask, build_task



_OFFICIAL_RUN = RUN_PRESETS["official"]


@dataclasses.dataclass
class RunConfig:
    """Everything about a run that is not the method: where, how often, how selected.
    Defaults: the official code's (`config.RUN_PRESETS`)."""

    model_dir: str
    eval_every: int = 1000
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    select_on: str = _OFFICIAL_RUN["select_on"]  # heldout | test (official, flatters numbers) | last
    heldout_fraction: float = 0.1
    protocol: str = "anet"
    # --protocol=wtalc options (d2net_tf.evaluation.evaluate_detections; config.RUN_PRESETS).
    wtalc_ground_truth: str = _OFFICIAL_RUN["wtalc_ground_truth"]  # or "segments": segments.npy
    wtalc_ap: str = _OFFICIAL_RUN["wtalc_ap"]  # "interpolated" (getLocMAP) or "precision_sum" (W-TALC)
    wtalc_class_counter_bug: bool = _OFFICIAL_RUN["wtalc_class_counter_bug"]  # getLocMAP's class-counter bug
    localization_preset: str = "official"  # official | paper
    jit_compile: bool = False
    precision: str = "float32"  # float32 | mixed_bfloat16
    conv_algorithm: str = "direct"  # direct | winograd (the train steps' TC layers, packed batches; modeling.winograd)
    packed: bool = _OFFICIAL_RUN["packed"]  # pack a batch's videos into one sequence: no convolution on padding
    strategy: str = "default"  # default | mirrored | multi_worker | tpu (d2net_tf.distribute; per-replica packing)
    max_nonfinite_steps: int = 100
    deterministic: bool = False  # TF op determinism too (the seed always fixes initial weights, dropout, batches)
    verbose: int = 1

    def __post_init__(self):
        check_precision(self.precision)
        check_conv_algorithm(self.conv_algorithm)
        if self.conv_algorithm != "direct" and not self.packed:
            raise D2NetInputError(f"conv_algorithm={self.conv_algorithm!r} runs on packed batches only: use --packed "
                                  "(with --rezero_padding) or --conv_algorithm=direct")

    def wtalc_options(self) -> dict:
        """The --protocol=wtalc keyword options of `evaluation.evaluate_detections`."""
        return {name: getattr(self, name) for name in WTALC_OPTIONS}


def split_heldout(train: VideoDataset, fraction: float, seed: int) -> tuple[VideoDataset, VideoDataset]:
    """A seeded held-out part of the training split for checkpoint selection."""
    n = len(train)
    n_held = max(1, int(round(fraction * n)))
    if n_held >= n:
        raise D2NetInputError(f"heldout_fraction={fraction} leaves no training videos out of {n}")
    perm = np.random.default_rng([seed, 7]).permutation(n)
    return train.select(np.sort(perm[n_held:])), train.select(np.sort(perm[:n_held]))


def make_optimizer(cfg: D2NetConfig) -> keras.optimizers.Optimizer:
    t = cfg.train
    eps = dict(epsilon=t.adam_epsilon, epsilon_mode=t.adam_epsilon_mode)
    if t.weight_decay_mode == "decoupled":
        return FusedAdamW(t.learning_rate, weight_decay=t.weight_decay, **eps)
    return FusedAdam(t.learning_rate, **eps)  # "l2" (TrainConfig validates the mode)


def create_model(cfg: D2NetConfig, run: RunConfig | None = None) -> D2NetTask:
    """A compiled D2NetTask whose optimizer variables exist (so checkpoints restore them)."""
    if run is not None and run.packed and not cfg.model.rezero_padding:
        raise D2NetInputError("packed batches need rezero_padding=True (without it padding leaks into the "
                              "neighbouring videos); use --nopacked or --rezero_padding")
    wd = cfg.train.weight_decay if cfg.train.weight_decay_mode == "l2" else 0.0
    with dtype_policy(run.precision if run else "float32"):
        model = build_task(cfg.model, cfg.loss, wd, cfg.train.seed, cfg.train.skip_nonpositive_loss,
                           run.conv_algorithm if run else "direct")
    jit = bool(run and run.jit_compile)
    model.compile(optimizer=make_optimizer(cfg), jit_compile=jit)
    if jit and not model.jit_compile:  # Keras only warns and runs without XLA
        raise D2NetInputError("--jit_compile: Keras turned XLA off for this model (it does under TF op "
                              "determinism: --deterministic); drop one of the two")
    model.optimizer.build(model.trainable_variables)
    return model


def seed_initialisation(seed: int) -> None:
    """Seeds Python, NumPy, TF and Keras, so the initial weights and the dropout RNG's start are
    functions of the seed (batches and the Eq. 3 pairing already are, statelessly)."""
    keras.utils.set_random_seed(seed)


def make_deterministic(seed: int) -> None:
    """`seed_initialisation` plus deterministic TF ops (bit-identical reruns on any device)."""
    seed_initialisation(seed)
    tf.config.experimental.enable_op_determinism()


class _StopFlag:
    """SIGINT/SIGTERM set a flag; training stops after the current step and checkpoints."""

    def __init__(self):
        self.stop = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.stop = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _GlobalStepTensorBoard(keras.callbacks.TensorBoard):
    """keras.callbacks.TensorBoard whose events carry the run's global training step.

    The job calls fit() once per evaluation window, and Keras restarts the callback's batch counter
    and the epoch number in every call: without this, each window's events would carry the same
    steps again and overwrite the previous window's curves in TensorBoard."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = int(self.model.train_steps.numpy())  # Keras' batch counter (private)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(int(self.model.train_steps.numpy()), logs)


class _StepCallback(keras.callbacks.Callback):
    def __init__(self, flag: _StopFlag, manager: tf.train.CheckpointManager, every: int, max_nonfinite: int):
        super().__init__()
        self.flag, self.manager, self.every, self.max_nonfinite = flag, manager, every, max_nonfinite

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.train_steps.numpy())
        if step % self.every == 0:
            save_once(self.manager, step)
        if int(self.model.nonfinite_steps.numpy()) > self.max_nonfinite:
            self.model.stop_training = True
        if self.flag.stop:
            self.model.stop_training = True


def train_and_evaluate(
    cfg: D2NetConfig,
    run: RunConfig,
    train_set: VideoDataset,
    test_set: VideoDataset,
    log: Callable[[str], None] = functools.partial(print, flush=True),
) -> dict:
    """Trains (resuming from MODEL_DIR when it holds checkpoints), selects, evaluates, writes results.json.

    The job holds MODEL_DIR's lock (model_dir.ModelDirLock) from before its first write to its end: a
    second job on the same directory is refused. Multi-worker: only the chief, which alone writes
    the checkpoints, takes it.
    """
    if run.select_on not in SELECT_ON:
        raise D2NetInputError(f"select_on must be one of {SELECT_ON}, got {run.select_on!r}")
    if train_set.feature_dim != cfg.model.feature_dim:
        raise D2NetInputError(
            f"features have dimension {train_set.feature_dim}, the model config expects {cfg.model.feature_dim}"
        )
    (make_deterministic if run.deterministic else seed_initialisation)(cfg.train.seed)
    strategy = make_strategy(run.strategy)
    os.makedirs(run.model_dir, exist_ok=True)
    chief = is_chief(strategy)
    with ModelDirLock(run.model_dir) if chief else contextlib.nullcontext():
        if chief:
            for path in remove_stale_temp_checkpoints(run.model_dir):
                log(f"removed {path} (left by an interrupted checkpoint save)")
        return _train_and_evaluate(cfg, run, train_set, test_set, strategy, chief, log)


def _train_and_evaluate(cfg, run, train_set, test_set, strategy, chief, log) -> dict:
    # config.json: the resolved LocalizationConfig too, which selection, the final evaluation and
    # every later command (evaluate, localize, export) use.
    record = create_model_dir(run.model_dir, cfg, dataclasses.asdict(run), train_set.name, train_set.classlist,
                              train_set.snippets_per_second,
                              localization_config(run.localization_preset, train_set.name, cfg.loss.topk_divisor),
                              write=chief)

    fit_set, select_set = train_set, None
    if run.select_on == "heldout":
        fit_set, select_set = split_heldout(train_set, run.heldout_fraction, cfg.train.seed)
    elif run.select_on == "test":
        select_set = test_set
    loc_cfg = record.localization
    selection_options = run.wtalc_options()
    if run.select_on == "heldout":  # test_gt_segments.npy covers only the test split
        selection_options["wtalc_ground_truth"] = "segments"

    with strategy.scope():  # variables mirrored on every replica; x_ref synchronised (see D2Net)
        model = create_model(cfg, run)
    ckpt = training_checkpoint(model)
    # Multi-worker: every worker takes part in each save (collectives), but only the chief
    # writes into MODEL_DIR; the others write to a private folder and all resume from the chief's.
    ckpt_root = run.model_dir if chief else tempfile.mkdtemp(prefix="d2net-worker-ckpt-")
    manager = tf.train.CheckpointManager(ckpt, ckpt_root, max_to_keep=run.keep_checkpoints)
    best_manager = tf.train.CheckpointManager(ckpt, os.path.join(ckpt_root, "best"), max_to_keep=1)
    state_path = os.path.join(run.model_dir, "best", "selection.json")
    best = {"step": -1, "mAP@0.5": -1.0}
    latest = tf.train.latest_checkpoint(run.model_dir)
    if latest:
        status = ckpt.restore(latest)
        try:
            status.assert_existing_objects_matched()
        except AssertionError:  # written before the dropout RNG state was checkpointed
            tf.train.Checkpoint(model=model.checkpoint_state(), optimizer=model.optimizer).restore(
                latest).assert_existing_objects_matched()
            log(f"warning: {latest} has no dropout RNG state (older version): "
                "the resumed run draws other dropout masks than an uninterrupted one would")
        log(f"resumed from {latest} at step {int(model.train_steps.numpy())}")
        if os.path.exists(state_path):
            best = read_json(state_path)

    # Only the chief writes into MODEL_DIR (its TensorBoard logs, selection.json, results.json).
    writer = tf.summary.create_file_writer(os.path.join(ckpt_root, "tensorboard"))
    tb = _GlobalStepTensorBoard(os.path.join(ckpt_root, "tensorboard", "fit"), update_freq=50)
    total = cfg.train.num_steps
    t0 = time.time()
    with _StopFlag() as flag:
        step_cb = _StepCallback(flag, manager, run.checkpoint_every, run.max_nonfinite_steps)
        step = int(model.train_steps.numpy())
        while step < total and not model.stop_training:
            n = min(run.eval_every - step % run.eval_every, total - step)
            gap = model.network.packing_gap() if run.packed else None
            data = distributed_training_dataset(strategy, fit_set, cfg.train.batch_size, cfg.train.max_seqlen,
                                                cfg.train.seed, step, gap, cfg.train.batch_sampling)
            hist = model.fit(data, steps_per_epoch=n, epochs=1, verbose=run.verbose, shuffle=False, callbacks=[step_cb, tb])
            step = int(model.train_steps.numpy())
            if model.stop_training:
                save_once(manager, step)
                if int(model.nonfinite_steps.numpy()) > run.max_nonfinite_steps:
                    raise FloatingPointError(
                        f"{int(model.nonfinite_steps.numpy())} steps had a non-finite loss or gradient "
                        f"(--max_nonfinite_steps={run.max_nonfinite_steps}); stopped at step {step}, checkpoint saved"
                    )
                log(f"stopped by signal at step {step}; checkpoint saved")
                return {"stopped_at_step": step}
            with writer.as_default(step=step):
                tf.summary.scalar("x_ref_norm", tf.norm(model.x_ref))
                tf.summary.scalar("learning_rate", float(model.optimizer.learning_rate.numpy()))
                tf.summary.scalar("nonfinite_steps", int(model.nonfinite_steps.numpy()))
                if select_set is not None:
                    res, _ = evaluate_model(model.network, select_set, loc_cfg, protocol=run.protocol,
                                            wtalc_options=selection_options)
                    map05 = res["mAP"][list(res["tiou_thresholds"]).index(0.5)] if 0.5 in res["tiou_thresholds"] else res["average_mAP"]
                    tf.summary.scalar(f"{run.select_on}/mAP@0.5", map05)
                    tf.summary.scalar(f"{run.select_on}/average_mAP", res["average_mAP"])
                    tf.summary.scalar(f"{run.select_on}/classification_mAP", res["classification_mAP"])
                    log(f"step {step}: {run.select_on} mAP@0.5 {map05:.4f} average {res['average_mAP']:.4f} "
                        f"cls-mAP {res['classification_mAP']:.4f} loss {hist.history['loss'][-1]:.4f}")
                    if map05 > best["mAP@0.5"]:
                        best = {"step": step, "mAP@0.5": float(map05)}
                        save_checkpoint(best_manager, step)
                        if chief:
                            write_json_atomic(state_path, best)
            save_once(manager, step)
    train_seconds = time.time() - t0

    if run.select_on != "last" and best_manager.latest_checkpoint:
        ckpt.restore(best_manager.latest_checkpoint).expect_partial()
    else:
        save_checkpoint(best_manager, int(model.train_steps.numpy()))
    result, _ = evaluate_model(model.network, test_set, loc_cfg, protocol=run.protocol, wtalc_options=run.wtalc_options())
    result.update(
        selected_on=run.select_on,
        selected_step=best["step"] if run.select_on != "last" else int(model.train_steps.numpy()),
        selection_mAP_at_0_5=best["mAP@0.5"] if run.select_on != "last" else None,
        train_seconds=train_seconds,
        loss_variant=cfg.loss.variant,
        localization_preset=run.localization_preset,
        evaluated_on=f"{test_set.name}:{','.join(sorted(set(test_set.subsets.tolist())))}",
    )
    if chief:
        write_json_atomic(os.path.join(run.model_dir, "results.json"), result)
    # Resuming after this point re-trains nothing: the last checkpoint is at num_steps.
    if run.select_on != "last":
        ckpt.restore(manager.latest_checkpoint).expect_partial()
    return result
