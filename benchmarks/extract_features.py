"""Stage timings of the video -> I3D feature pipeline (decode, TV-L1 flow, RGB I3D, flow I3D).

    python -m benchmarks.extract_features [--seconds 4] [--width 320 --height 240 --fps 30]

Generates a clip (moving shapes, PyAV), runs the full pipeline at the protocol sizes (shorter
side 256, crop 224, float32), then times the two I3D stages again in mixed_bfloat16 on the same
snippet shape. Prints seconds per second and per minute of video for each stage and, for the I3D
stages, the FLOP-floor fraction: (analytic conv FLOPs per second of video / the machine's best
matmul GFLOP/s in that dtype, measured in this run) / measured time. Random I3D weights unless
--rgb_weights / --flow_weights are given (the timings do not depend on the values).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from benchmarks.common import machine_header, markdown_table, matmul_peak_gflops, time_calls
from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND


def write_clip(path: str, seconds: float, width: int, height: int, fps: int) -> str:
    import av

    rng = np.random.default_rng(0)
    background = (rng.random((height, width, 3)) * 120).astype(np.uint8)
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = width, height, "yuv420p", 4_000_000
        for i in range(int(seconds * fps)):
            img = background.copy()
            x = (3 * i) % (width - 40)
            img[40:80, x:x + 40] = (240, 50, 50)
            y = (height - 50 - 2 * i) % (height - 50)
            img[y:y + 50, width // 2:width // 2 + 30] = (50, 200, 240)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--batch_snippets", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rgb_weights")
    parser.add_argument("--flow_weights")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from d2net_tf.features import protocol
    from d2net_tf.features.extract import FeatureExtractor, feature_error
    from d2net_tf.features.i3d import InceptionI3d, conv_flops, load_i3d

    def models(dtype):
        if args.rgb_weights and args.flow_weights:
            return load_i3d(args.rgb_weights, "rgb", dtype), load_i3d(args.flow_weights, "flow", dtype)
        tf.keras.utils.set_random_seed(0)
        return InceptionI3d(3, dtype=dtype), InceptionI3d(2, dtype=dtype)

    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(os.path.join(tmp, "clip.mp4"), args.seconds, args.width, args.height, args.fps)
        rgb32, flow32 = models("float32")
        ex = FeatureExtractor(rgb32, flow32, batch_snippets=args.batch_snippets)
        ex.warm_up()
        result = ex.extract(clip)
    seconds = ex.seconds_of_video
    snippets = len(result.features)
    print(f"clip: {args.width}x{args.height} at {args.fps} fps, {seconds:.2f} s -> {result.frames} frames at 25 fps, "
          f"{snippets} snippets; I3D batch {args.batch_snippets} snippets")

    # I3D stages alone, float32 and mixed_bfloat16, on the protocol's snippet shape
    rng = np.random.default_rng(0)
    shape = (args.batch_snippets, protocol.SNIPPET_FRAMES, protocol.CROP, protocol.CROP)
    inputs = {s: tf.constant(rng.uniform(-1, 1, (*shape, c)).astype(np.float32))
              for s, c in protocol.STREAM_CHANNELS.items()}
    per_snippet, errors = {}, {}
    peaks = {d: matmul_peak_gflops(d) for d in ("float32", "bfloat16")}  # before and after: the machine drifts
    for dtype in ("float32", "mixed_bfloat16"):
        rgb, flow = (rgb32, flow32) if dtype == "float32" else models(dtype)
        for stream, model in (("rgb", rgb), ("flow", flow)):
            fn = tf.function(lambda x, m=model: tf.cast(m(x), tf.float32))
            t = time_calls(lambda: fn(inputs[stream]).numpy(), args.repeats, warmup=1)
            per_snippet[(stream, dtype)] = t["median_s"] / args.batch_snippets
            if dtype != "float32":
                ref = tf.function(lambda x, m=(rgb32 if stream == "rgb" else flow32): m(x))
                errors[stream] = feature_error(fn(inputs[stream]).numpy(), ref(inputs[stream]).numpy())
    peaks = {d: max(p, matmul_peak_gflops(d)) for d, p in peaks.items()}

    sps = I3D_SNIPPETS_PER_SECOND
    rows = []
    for stage in ("decode", "flow"):
        s = ex.timings[stage] / seconds
        rows.append({"stage": stage, "precision": "-", "s per s of video": s, "s per min of video": 60 * s,
                     "GFLOP per s of video": "-", "FLOP-floor fraction": "-"})
    for stream in ("rgb", "flow"):
        flops = conv_flops(in_channels=protocol.STREAM_CHANNELS[stream]) * sps
        pipeline = ex.timings[f"{stream}_i3d"] / seconds
        for dtype, s in (("float32 (pipeline)", pipeline), ("float32", per_snippet[(stream, "float32")] * sps),
                         ("mixed_bfloat16", per_snippet[(stream, "mixed_bfloat16")] * sps)):
            peak = peaks["bfloat16" if dtype.startswith("mixed") else "float32"]
            rows.append({"stage": f"{stream}_i3d", "precision": dtype, "s per s of video": s,
                         "s per min of video": 60 * s, "GFLOP per s of video": flops / 1e9,
                         "FLOP-floor fraction": flops / 1e9 / peak / s})
    print(markdown_table(rows, list(rows[0])))
    total = sum(ex.timings.values()) / seconds
    top = max(ex.timings, key=ex.timings.get)
    print(f"total (float32 pipeline): {total:.2f} s per second of video (= minutes per minute of video); "
          f"dominant stage: {top} ({ex.timings[top] / sum(ex.timings.values()):.0%})")
    print(f"matmul peak this run: float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 {peaks['bfloat16']:.0f} GFLOP/s; "
          f"I3D conv FLOPs per snippet: RGB {conv_flops() / 1e9:.1f} G, flow {conv_flops(in_channels=2) / 1e9:.1f} G")
    for stream, e in errors.items():
        print(f"mixed_bfloat16 vs float32, {stream} I3D ({'given' if args.rgb_weights else 'random'} weights): "
              f"max abs {e['max_abs']:.3g} of features up to {e['reference_max_abs']:.3g}, "
              f"relative L2 {e['relative_l2']:.3g}")


if __name__ == "__main__":
    main()
