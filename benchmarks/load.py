"""Load benchmark: localization + evaluation of many long videos in bounded memory,
and the TFRecord training input pipeline (when present).

    python -m benchmarks.load [--videos 10000] [--snippets 2000] [--classes 20]

Rows (each phase runs in a fresh process, so its peak RSS from
`resource.getrusage(RUSAGE_SELF).ru_maxrss` is its own):
  * baseline: the imports only (numpy, d2net_tf.localization / evaluation).
  * generate only: the (video_id, tcam [T, C], attention [T]) generator alone (random
    smooth TCAMs made on the fly, never all in memory).
  * localize (streaming): `iter_localize_videos` over the generator, keeping only a
    running detection count.
  * localize + evaluate: `localize_videos` over the generator (keeps the detection table
    only), then `evaluate_detections` against a ground truth of 2 segments per video.
  * tfrecord: `write_tfrecords` 1,000 random [500, 512] videos (977 MiB of float32 features)
    into 50 shards, 20 videos in memory at a time; then, in a fresh process, 400 batches of 8
    (3.2 passes) from `tfrecord_training_dataset`; RSS sampled every quarter. The RAM budget
    is half the dataset: what reading adds to the idle process (TensorFlow loaded) must stay
    below it. When d2net_tf/data/tfrecord.py is missing the row says so.
The TCAMs of all videos would take videos * snippets * classes * 4 bytes (float32; 1.6 GB
for 10,000 x 2,000 x 20); the point is that the peak RSS stays far below that.

`run(...) -> list[dict]` returns the rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import resource
import sys
import time
from typing import Iterator

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND as SPS


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _smooth(rng: np.random.Generator, t: int, c: int, width: int = 25) -> np.ndarray:
    """[t, c] temporally smooth noise (moving average of white noise, via a cumulative sum)."""
    x = rng.standard_normal((t + width, c), dtype=np.float32)
    cs = np.cumsum(x, axis=0, dtype=np.float32)
    return (cs[width:] - cs[:-width]) * (4.0 / np.sqrt(width))


def video_stream(n: int, snippets: int, classes: int, seed: int = 0) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(video_id, tcam [T, C] float32 in (0, 1), attention [T]) one at a time; 2 active classes per video."""
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        logits = _smooth(rng, snippets, classes)
        bias = np.full(classes, -4.0, np.float32)
        bias[rng.choice(classes, 2, replace=False)] = 0.0
        tcam = 1.0 / (1.0 + np.exp(-(logits + bias)))
        attention = 1.0 / (1.0 + np.exp(-_smooth(rng, snippets, 1)[:, 0]))
        yield f"v{i:06d}", tcam, attention


def ground_truth(n: int, snippets: int, classes: int, seed: int = 0):
    from d2net_tf.evaluation import GroundTruth

    rng = np.random.default_rng([seed, 1 << 20])
    duration = snippets / SPS
    vids = np.repeat(np.array([f"v{i:06d}" for i in range(n)]), 2)
    starts = rng.uniform(0, duration * 0.8, 2 * n)
    ends = np.minimum(starts + rng.uniform(2, 60, 2 * n), duration)
    return GroundTruth(vids, rng.integers(0, classes, 2 * n), starts, ends, [f"class{c}" for c in range(classes)],
                       durations={f"v{i:06d}": duration for i in range(n)})


def _phase(name: str, n: int, snippets: int, classes: int, queue) -> None:
    from d2net_tf.data.benchmarks import THUMOS14
    from d2net_tf.evaluation import evaluate_detections
    from d2net_tf.localization import LocalizationConfig, iter_localize_videos, localize_videos

    config = LocalizationConfig.official("thumos14")
    t0 = time.perf_counter()
    row = {"name": name, "videos": n, "snippets": snippets, "classes": classes}
    if name == "baseline (imports)":
        pass
    elif name == "generate only":
        row["checksum"] = float(sum(t[1][0, 0] for t in video_stream(n, snippets, classes)))
    elif name == "localize (iter_localize_videos, streaming)":
        row["detections"] = sum(len(d) for d in iter_localize_videos(video_stream(n, snippets, classes), SPS, config))
    elif name == "localize_videos + evaluate_detections":
        det = localize_videos(video_stream(n, snippets, classes), SPS, config)
        t1 = time.perf_counter()
        gt = ground_truth(n, snippets, classes)
        res = evaluate_detections(gt, det, THUMOS14.tiou_thresholds, protocol="anet")
        row.update(detections=len(det), evaluate_s=time.perf_counter() - t1, average_mAP=res["average_mAP"])
    row["seconds"] = time.perf_counter() - t0
    row["peak_rss_mb"] = _peak_rss_mb()
    queue.put(row)


def _run_phase(name: str, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_phase, args=(name, *args, queue))
    proc.start()
    row = queue.get()
    proc.join()
    return row


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _write_tfrecord_shards(folder: str, videos: int, snippets: int, dim: int, classes: int, per_shard: int, queue) -> None:
    """Writes `videos` random [snippets, dim] videos, `per_shard` per shard, one chunk in memory at a time."""
    from d2net_tf.data.dataset import VideoDataset
    from d2net_tf.data.tfrecord import write_tfrecords

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for k in range(0, videos, per_shard):
        n = min(per_shard, videos - k)
        labels = np.zeros((n, classes), np.float32)
        labels[np.arange(n), rng.integers(0, classes, n)] = 1.0
        chunk = VideoDataset(
            name="load", classlist=[f"class{c}" for c in range(classes)],
            video_ids=np.array([f"v{k + i:06d}" for i in range(n)]), subsets=np.array(["training"] * n),
            labels=labels, segments=[np.zeros((0, 2))] * n, segment_labels=[np.zeros((0,), np.int32)] * n,
            durations=np.full(n, snippets / SPS), features=[rng.random((snippets, dim), dtype=np.float32) for _ in range(n)],
        )
        write_tfrecords(chunk, os.path.join(folder, f"part{k // per_shard:05d}"), 1)
    queue.put({"write_s": time.perf_counter() - t0, "write_peak_rss_mb": _peak_rss_mb()})


def _read_tfrecord_batches(folder: str, batches: int, batch_size: int, max_seqlen: int, queue) -> None:
    import glob

    from d2net_tf.data.tfrecord import tfrecord_training_dataset

    files = sorted(glob.glob(os.path.join(folder, "*.tfrecord")))
    ds = tfrecord_training_dataset(files, batch_size, max_seqlen, seed=0, shuffle_buffer=64)
    idle = _current_rss_mb()  # TensorFlow loaded, pipeline built, nothing read yet
    t0 = time.perf_counter()
    samples = []
    for i, batch in enumerate(ds.take(batches)):
        if (i + 1) % max(1, batches // 4) == 0:
            samples.append(round(_current_rss_mb()))
    queue.put({"read_s": time.perf_counter() - t0, "read_peak_rss_mb": _peak_rss_mb(), "rss_samples_mb": samples,
               "idle_rss_mb": idle})


def _in_process(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def _tfrecord_row(videos: int = 1000, snippets: int = 500, dim: int = 512, classes: int = 20,
                  batches: int = 400, batch_size: int = 8, max_seqlen: int = 320) -> dict:
    """Streams training batches from TFRecord shards of a dataset bigger than the RAM budget
    (the budget: what reading adds to the idle process's RSS, TensorFlow loaded, must stay below
    half the dataset's size)."""
    row = {"name": "TFRecord training pipeline (tfrecord_training_dataset)", "videos": videos,
           "snippets": snippets, "classes": classes}
    if importlib.util.find_spec("d2net_tf.data.tfrecord") is None:
        row["note"] = "d2net_tf/data/tfrecord.py not present: not measured"
        return row
    import tempfile

    size_mb = videos * snippets * dim * 4 / 2**20
    with tempfile.TemporaryDirectory(prefix="d2net-load-") as folder:
        row.update(_in_process(_write_tfrecord_shards, folder, videos, snippets, dim, classes, 20))
        disk = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 2**20
        row.update(_in_process(_read_tfrecord_batches, folder, batches, batch_size, max_seqlen))
    row["seconds"], row["peak_rss_mb"] = row["read_s"], row["read_peak_rss_mb"]
    row["note"] = (f"D={dim}, {disk:.0f} MiB of shards ({size_mb:.0f} MiB of float32 features, 50 shards); "
                   f"{batches} batches of {batch_size} (= {batches * batch_size / videos:.1f} passes); "
                   f"RSS before reading {row['idle_rss_mb']:.0f} MiB, at each quarter {row['rss_samples_mb']} MiB; "
                   f"growth {row['peak_rss_mb'] - row['idle_rss_mb']:.0f} MiB vs budget {size_mb / 2:.0f} MiB: "
                   f"{'within' if row['peak_rss_mb'] - row['idle_rss_mb'] < size_mb / 2 else 'EXCEEDED'}; "
                   f"writing the shards took {row['write_s']:.0f} s")
    return row


def run(videos: int = 10_000, snippets: int = 2_000, classes: int = 20, only_tfrecord: bool = False) -> list[dict]:
    rows = []
    for name in () if only_tfrecord else ("baseline (imports)", "generate only", "localize (iter_localize_videos, streaming)",
                 "localize_videos + evaluate_detections"):
        rows.append(_run_phase(name, videos, snippets, classes))
    rows.append(_tfrecord_row())
    in_memory = videos * snippets * classes * 4 / 2**20
    for r in rows if not only_tfrecord else ():
        r["all_tcams_in_memory_mb"] = in_memory
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| phase | videos x snippets x C | time (s) | peak RSS (MiB) | notes |", "|---|---|---|---|---|"]
    for r in rows:
        notes = []
        if "detections" in r:
            notes.append(f"{r['detections']} detections")
        if "evaluate_s" in r:
            notes.append(f"evaluate {r['evaluate_s']:.1f} s, average mAP {r['average_mAP']:.4f}")
        if "note" in r:
            notes.append(r["note"])
        size = f"{r['videos']} x {r['snippets']} x {r['classes']}" if r["videos"] else "-"
        t = f"{r['seconds']:.1f}" if "seconds" in r else "-"
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"
        lines.append(f"| {r['name']} | {size} | {t} | {rss} | {'; '.join(notes)} |")
    if "all_tcams_in_memory_mb" in rows[0]:
        lines.append(f"\nAll TCAMs at once would take {rows[0]['all_tcams_in_memory_mb']:.0f} MiB (float32).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--snippets", type=int, default=2_000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--only_tfrecord", action="store_true", help="Only the TFRecord pipeline row.")
    args = parser.parse_args()
    print(format_table(run(args.videos, args.snippets, args.classes, args.only_tfrecord)))


if __name__ == "__main__":
    main()
