"""Peak RSS of training on an ActivityNet1.2-shaped set at D=2048, per data layout:
`python -m benchmarks.peak_rss [--scale 1.0] [--steps 100] [--root /tmp/d2net-peak-rss]`.

The set: the 7,202 videos of the vendored ActivityNet1.2 annotations (training + validation),
T_i = round(duration_i x the I3D snippet rate) snippets (1.30 M snippets, 10.6 GB of float32 features at
D=2048), random features; `--scale s` keeps the first round(s x 7202) videos (same length
distribution, s x the size on disk; say so when s < 1). Written once as per-video .npy files,
then converted to indexed TFRecord shards (`python -m trainers.convert_tfrecord` does the same).
Each layout trains in its own subprocess with d2net-fit's CPU runtime (`--cpu_allocators`: the BFC
pool, d2net-fit's default, and / or TensorFlow's allocator) (preset official, ActivityNet1.2 settings, packed,
float32; `--steps` steps of the in-memory pipeline `pipeline.training_dataset`, batch i a
function of (seed, i)) and reports its peak resident set size (getrusage ru_maxrss) and the
loss of every step:
  memory          --data_layout=per_video (every video loaded into memory first)
  per_video_mmap  memory-mapped reads of the videos of each batch
  tfrecord        one seek + read per video from the shards
The loss curves must equal the in-memory one (max abs difference printed). Goal:
peak RSS < 4 GB with per_video_mmap / tfrecord.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from d2net_tf.cpu_runtime import BFC_ENV

LAYOUTS = {"memory": "per_video", "per_video_mmap": "per_video_mmap", "tfrecord": "tfrecord"}
GOAL_MIB = 4096


def generate(root: str, scale: float, feature_dim: int = 2048, seed: int = 0) -> dict:
    """Writes root/per_video (features/*.npy + ground_truth.json) and root/tfrecord; returns sizes."""
    from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
    from d2net_tf.data.per_video import load_per_video_dataset
    from d2net_tf.data.sources import write_indexed_tfrecords, write_per_video
    from d2net_tf.data.wtalc import load_wtalc_annotations, vendored_annotation_dir

    ann = load_wtalc_annotations(vendored_annotation_dir("ActivityNet1.2"))
    n = max(20, int(round(scale * len(ann))))
    ann = ann.select(np.arange(min(n, len(ann))))
    lengths = np.maximum(np.round(ann.durations * I3D_SNIPPETS_PER_SECOND).astype(int), 1)
    pv, tfr = os.path.join(root, "per_video"), os.path.join(root, "tfrecord")
    marker = os.path.join(root, "done.json")
    if os.path.exists(marker):
        info = json.load(open(marker))
        if info.get("scale") == scale and info.get("feature_dim") == feature_dim:
            return info
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(pv, "features"))
    t0 = time.time()
    for i, (vid, t) in enumerate(zip(ann.video_ids, lengths)):
        x = np.random.default_rng([seed, i]).random((int(t), feature_dim), dtype=np.float32)
        np.save(os.path.join(pv, "features", f"{vid}.npy"), x, allow_pickle=False)
    ann.features = [None] * len(ann)
    write_per_video(ann, pv)  # ground_truth.json (the features are on disk already)
    t1 = time.time()
    lazy = load_per_video_dataset(os.path.join(pv, "features"), os.path.join(pv, "ground_truth.json"),
                                  name="ActivityNet1.2", mmap=True, min_snippets=1, warn=lambda m: None)
    write_indexed_tfrecords(lazy, tfr, num_shards=16)
    info = {"scale": scale, "feature_dim": feature_dim, "videos": len(ann), "snippets": int(lengths.sum()),
            "feature_gb": float(lengths.sum() * feature_dim * 4 / 1e9), "write_npy_s": t1 - t0,
            "convert_tfrecord_s": time.time() - t1}
    json.dump(info, open(marker, "w"))
    return info


def worker(root: str, layout: str, steps: int, allocator: str = "bfc") -> dict:
    """One layout: load, train `steps` steps, report ru_maxrss and the per-step losses. The CPU
    runtime is d2net-fit's (`configure_cpu_runtime`), with TensorFlow's CPU `allocator`."""
    from d2net_tf.cpu_runtime import configure_cpu_runtime

    configure_cpu_runtime(allocator=allocator)  # before TensorFlow's first op
    import keras
    import tensorflow as tf

    from d2net_tf.config import preset
    from d2net_tf.data.loading import load_dataset
    from d2net_tf.data.pipeline import training_dataset
    from d2net_tf.training import RunConfig, create_model

    folder = os.path.join(root, "tfrecord" if layout == "tfrecord" else "per_video")
    t0 = time.time()
    dataset = load_dataset(folder, "activitynet12", LAYOUTS[layout], feature_dim=2048, min_snippets=1,
                           warn=lambda m: None)
    train_set = dataset.subset("training")
    load_s = time.time() - t0
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    keras.utils.set_random_seed(0)
    cfg = preset("official_fixed", "activitynet12")
    cfg.model.feature_dim, cfg.model.num_classes = 2048, dataset.num_classes
    cfg.model.dropout = 0.0  # the same curve in every process needs no RNG beyond (seed, step)
    model = create_model(cfg, RunConfig(model_dir="", packed=True))
    gap = getattr(model, "network", model).packing_gap()
    losses = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    data = training_dataset(train_set, cfg.train.batch_size, cfg.train.max_seqlen, cfg.train.seed, 0, gap,
                            cfg.train.batch_sampling)
    t1 = time.time()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Record()])
    del tf
    return {"layout": layout, "allocator": allocator, "train_videos": len(train_set), "load_s": load_s,
            "train_s": time.time() - t1,
            "rss_after_load_mib": rss_loaded, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "losses": losses, "batch_size": cfg.train.batch_size}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the ActivityNet1.2 set (1.0 = 10.6 GB)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--root", default="/tmp/d2net-peak-rss")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--cpu_allocators", default="bfc",
                        help="TensorFlow CPU allocators to train with, comma-separated: bfc (d2net-fit's default), "
                        "tensorflow (d2net-fit --cpu_allocator)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.root, args.worker, args.steps, args.cpu_allocators)), flush=True)
        return
    from benchmarks.common import markdown_table

    info = generate(args.root, args.scale)
    print(f"ActivityNet1.2-shaped set, scale {args.scale}: {info['videos']} videos, {info['snippets']} snippets, "
          f"{info['feature_gb']:.2f} GB of features per layout on disk (D=2048); written in "
          f"{info['write_npy_s']:.0f} s (npy) + {info['convert_tfrecord_s']:.0f} s (TFRecord)")
    if args.scale < 1:
        print(f"SCALED DOWN: {args.scale} x the full ~10 GB ActivityNet1.2-shaped set")
    rows = []
    env = {k: v for k, v in os.environ.items() if k != BFC_ENV}  # each worker chooses its allocator
    for allocator in args.cpu_allocators.split(","):
        for layout in args.layouts.split(","):
            proc = subprocess.run([sys.executable, "-m", "benchmarks.peak_rss", "--worker", layout, "--root",
                                   args.root, "--steps", str(args.steps), "--cpu_allocators", allocator],
                                  capture_output=True, text=True, env=env)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                rows.append({"layout": layout, "allocator": allocator,
                             "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:120]})
                continue
            rows.append(json.loads(lines[-1][len("RESULT "):]))
    ref = next((r for r in rows if r.get("layout") == "memory" and "losses" in r), None)
    for r in rows:
        if "losses" in r and ref is not None:
            r["max_abs_loss_diff"] = float(np.max(np.abs(np.array(r["losses"]) - np.array(ref["losses"]))))
        if "peak_rss_mib" in r:
            r["goal"] = "n/a" if r["layout"] == "memory" else ("met" if r["peak_rss_mib"] < GOAL_MIB else "MISSED")
        r["steps"] = len(r.get("losses", []))
    print(markdown_table(rows, ["layout", "allocator", "train_videos", "steps", "batch_size", "load_s", "train_s",
                                "rss_after_load_mib", "peak_rss_mib", "max_abs_loss_diff", "goal", "error"]))


if __name__ == "__main__":
    main()
