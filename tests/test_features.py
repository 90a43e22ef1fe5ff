"""Video -> I3D features (d2net_tf.features, trainers.extract_features, trainers.localize --video).

Videos are generated here (moving shapes, PyAV); I3D runs with random weights on small crops;
checkpoints are written with the real kinetics-i3d variable names and shapes
(tests/fixtures/kinetics_i3d_variables.json, read from the public checkpoints' index files).
Tests needing PyAV / OpenCV-contrib skip when the `video` extra is not installed.
"""

from __future__ import annotations

import json
import math
import os
import re
from fractions import Fraction

import numpy as np
import pytest

from d2net_tf.errors import D2NetInputError
from d2net_tf.features import protocol
from conftest import assert_one_line_error, run_module as run

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "kinetics_i3d_variables.json")
SMALL = dict(short_side=40, crop=32)  # protocol: 256 / 224; small sizes keep TV-L1 and I3D fast


def write_video(path, frames, fps, width=64, height=48, seed=0, codec="mpeg4"):
    """A clip of two moving squares on a fixed random background."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(seed)
    background = (rng.random((height, width, 3)) * 80).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        container.start_encoding()  # the header, even for a zero-length video
        for i in range(frames):
            img = background.copy()
            x = (4 + 2 * i) % (width - 12)
            img[10:22, x:x + 12] = (250, 40, 40)
            y = (30 - i) % (height - 10)
            img[y:y + 10, width - 20:width - 10] = (40, 220, 250)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def video_libs():
    pytest.importorskip("av")
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "optflow"):
        pytest.skip("OpenCV without contrib (no TV-L1)")
    pytest.importorskip("tqdm")


@pytest.fixture(scope="module")
def weights(tmp_path_factory, video_libs):
    """Random-weight RGB and flow I3D weight files (the converter's output format)."""
    import keras

    from d2net_tf.features.i3d import InceptionI3d, save_weights

    keras.utils.set_random_seed(0)
    base = tmp_path_factory.mktemp("weights")
    paths = {}
    for stream, channels in protocol.STREAM_CHANNELS.items():
        paths[stream] = str(base / f"i3d_{stream}.weights.h5")
        save_weights(InceptionI3d(channels), paths[stream])
    return paths


@pytest.fixture(scope="module")
def extractor(weights):
    from d2net_tf.features.extract import FeatureExtractor

    return FeatureExtractor.from_weights(weights["rgb"], weights["flow"], batch_snippets=2, **SMALL)


# ------------------------------------------------------------------------------------ protocol


def test_protocol_numbers_follow_the_snippet_rate():
    from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND

    assert protocol.FPS == 25.0 and protocol.FPS / protocol.SNIPPET_FRAMES == I3D_SNIPPETS_PER_SECOND
    assert protocol.frames_at_fps(80 / 30) == 67 and protocol.frames_at_fps(2.8) == 70
    assert [protocol.snippet_count(n) for n in (0, 15, 16, 31, 32, 67)] == [0, 0, 1, 1, 2, 4]
    assert protocol.resized_size(320, 240) == (341, 256) and protocol.resized_size(240, 320) == (256, 341)


@pytest.mark.parametrize("fps,frames", [(25, 70), (30, 80), (15, 40)])
def test_decoding_resamples_to_25_fps(tmp_path, video_libs, fps, frames):
    from d2net_tf.features.video import Decoded

    path = write_video(tmp_path / f"v{fps}.mp4", frames, fps)
    decoded = Decoded(path, **SMALL)
    out = list(decoded)
    expected = math.ceil(frames * 25 / fps)
    assert len(out) == decoded.frames == expected
    assert decoded.duration == pytest.approx(frames / fps)
    assert out[0].rgb.shape == (32, 32, 3) and out[0].rgb.dtype == np.uint8
    assert out[0].gray.shape == (40, 53)  # shorter side 40, aspect 4:3 kept
    if fps == 25:  # every source frame kept, in order: the red square moves right
        reds = [np.argmax((f.rgb[:, :, 0] > 180).sum(0)) for f in out[8:14]]
        assert reds == sorted(reds) and len(set(reds)) > 1


# ------------------------------------------------------------------------------------ TV-L1


@pytest.mark.parametrize("dx,dy", [(3, -2), (-2, 4)])
def test_tvl1_recovers_a_known_translation(video_libs, dx, dy):
    import cv2

    from d2net_tf.features.flow import TVL1, scale_flow

    rng = np.random.default_rng(1)
    noise = cv2.GaussianBlur(rng.random((96, 128)).astype(np.float32), (0, 0), 2.5)
    a = ((noise - noise.mean()) / noise.std() * 45 + 128).clip(0, 255).astype(np.uint8)
    b = np.roll(a, (dy, dx), axis=(0, 1))  # content moves by +dx right, +dy down
    flow = TVL1().flow(a, b)
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    med = np.median(inner, axis=0)
    assert med[0] == pytest.approx(dx, abs=0.25) and med[1] == pytest.approx(dy, abs=0.25)
    scaled = scale_flow(np.array([[[-30.0, 10.0]]]))
    np.testing.assert_allclose(scaled, [[[-1.0, 0.5]]])


# ------------------------------------------------------------------------------------ I3D


def test_i3d_forward_shape_and_config_round_trip():
    import keras

    from d2net_tf.features.i3d import InceptionBlock, InceptionI3d, Unit3D

    keras.utils.set_random_seed(0)
    for stream, channels in protocol.STREAM_CHANNELS.items():
        model = InceptionI3d(channels)
        x = np.random.default_rng(0).uniform(-1, 1, (3, 16, 32, 32, channels)).astype(np.float32)
        assert tuple(model(x).shape) == (3, protocol.STREAM_DIM)
        names = [n for n, _ in model.checkpoint_variables()]
        assert len(names) == len(set(names)) == len(model.weights) == 230
    clone = InceptionI3d.from_config(model.get_config())
    assert clone.in_channels == 2 and len(clone.weights) == len(model.weights)
    unit = Unit3D(8, (3, 3, 3), (1, 2, 2), use_bias=True, activation=None, name="u")
    assert Unit3D.from_config(unit.get_config()).get_config() == unit.get_config()
    block = InceptionBlock((4, 4, 8, 2, 4, 4), branch_2b_name="Conv3d_0a_3x3", name="b")
    assert InceptionBlock.from_config(block.get_config()).get_config() == block.get_config()
    y = block(np.zeros((1, 4, 8, 8, 6), np.float32))
    assert tuple(y.shape) == (1, 4, 8, 8, 20)


def test_i3d_protocol_size_shapes():
    """16 x 224 x 224: Mixed_5c is 2 x 7 x 7 x 1024; the feature is its average; logits [1, 400]."""
    from d2net_tf.features.i3d import InceptionI3d, conv_flops

    model = InceptionI3d(3)
    x = np.zeros((1, 16, 224, 224, 3), np.float32)
    assert tuple(model.mixed_5c(x).shape) == (1, 2, 7, 7, 1024)
    assert tuple(model.logits(x).shape) == (1, 400)
    assert conv_flops() == pytest.approx(55.58e9, rel=1e-3)  # 27.8 GMAC per 16-frame RGB snippet
    first = 2 * 8 * 112 * 112 * 64 * 7 * 7 * 7 * 3  # Conv3d_1a_7x7 alone
    assert conv_flops() - conv_flops(in_channels=2) == pytest.approx(first / 3)


def test_load_i3d_errors(tmp_path, weights):
    from d2net_tf.features.i3d import load_i3d

    with pytest.raises(D2NetInputError, match="no I3D rgb weights at .*kinetics-i3d.*convert_i3d"):
        load_i3d(str(tmp_path / "missing.weights.h5"), "rgb")
    with pytest.raises(D2NetInputError, match="3-channel input, but the flow stream needs 2"):
        load_i3d(weights["rgb"], "flow")
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(D2NetInputError, match="bad.weights.h5"):
        load_i3d(str(bad), "rgb")


# ------------------------------------------------------------------------------------ converter


def write_checkpoint(folder, variables, seed=0, drop=(), extra=None, reshape=None):
    """A TF checkpoint (V2 bundle) with exactly these names and shapes, random values."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shapes = {n: list(s) for n, s in variables.items() if n not in drop}
    shapes.update(extra or {})
    shapes.update(reshape or {})
    values = {n: rng.standard_normal(s).astype(np.float32) for n, s in sorted(shapes.items())}
    os.makedirs(folder, exist_ok=True)
    tf.raw_ops.SaveV2(prefix=os.path.join(folder, "model.ckpt"), tensor_names=list(values),
                      shape_and_slices=[""] * len(values), tensors=list(values.values()))
    return values


@pytest.fixture(scope="module")
def public_variables():
    with open(FIXTURE) as f:
        return json.load(f)


@pytest.mark.parametrize("name,stream,scope,classes", [
    ("rgb_imagenet", "rgb", "RGB/inception_i3d/", 400),
    ("flow_imagenet", "flow", "Flow/inception_i3d/", 400),
    ("rgb_scratch_kin600", "rgb", "", 600),  # no scope, [1,1,1,1,C] BN statistics, Momentum slots
])
def test_converter_round_trips_the_public_layouts(tmp_path, public_variables, name, stream, scope, classes):
    from d2net_tf.features.convert_i3d import convert_checkpoint
    from d2net_tf.features.i3d import load_i3d

    values = write_checkpoint(tmp_path / name, public_variables[name])
    out = str(tmp_path / f"{name}.weights.h5")
    summary = convert_checkpoint(str(tmp_path / name), out)
    assert (summary["stream"], summary["scope"], summary["num_classes"], summary["variables"]) == (
        stream, scope, classes, 230)
    assert all(n.endswith("/Momentum") for n in summary["ignored"])
    model = load_i3d(out, stream)
    for sub, var in model.checkpoint_variables():
        np.testing.assert_array_equal(var.numpy(), values[scope + sub].reshape(var.shape))
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_converter_errors_name_the_variable(tmp_path, public_variables):
    from d2net_tf.features.convert_i3d import convert_checkpoint

    rgb = public_variables["rgb_imagenet"]
    name = "RGB/inception_i3d/Mixed_4c/Branch_1/Conv3d_0b_3x3/conv_3d/w"
    cases = {
        "unmapped": (dict(extra={"RGB/inception_i3d/Mixed_6a/Branch_0/Conv3d_0a_1x1/conv_3d/w": [1, 1, 1, 8, 8]}),
                     r"RGB/inception_i3d/Mixed_6a/Branch_0/Conv3d_0a_1x1/conv_3d/w \(shape \[1, 1, 1, 8, 8\]\) is not mapped"),
        "missing": (dict(drop=[name]), f"missing variable {name}"),
        "shape": (dict(reshape={name: [3, 3, 3, 112, 225]}),
                  r"checkpoint shape \[3, 3, 3, 112, 225\], InceptionI3d expects \[3, 3, 3, 112, 224\]"),
    }
    for case, (kwargs, message) in cases.items():
        write_checkpoint(tmp_path / case, rgb, **kwargs)
        with pytest.raises(D2NetInputError, match=message):
            convert_checkpoint(str(tmp_path / case), str(tmp_path / f"{case}.weights.h5"))
        assert not os.path.exists(tmp_path / f"{case}.weights.h5")
    write_checkpoint(tmp_path / "ok", rgb)
    with pytest.raises(D2NetInputError, match="a rgb checkpoint .3 input channels., not flow"):
        convert_checkpoint(str(tmp_path / "ok"), str(tmp_path / "x.weights.h5"), stream="flow")
    with pytest.raises(D2NetInputError, match="no checkpoint"):
        convert_checkpoint(str(tmp_path), str(tmp_path / "x.weights.h5"))


@pytest.mark.slow
def test_converter_command_line(tmp_path, public_variables):
    write_checkpoint(tmp_path / "flow_imagenet", public_variables["flow_imagenet"])
    p = run("d2net_tf.cli.convert_i3d", "--checkpoint", tmp_path / "flow_imagenet", "--out",
            tmp_path / "i3d_flow.weights.h5")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "flow I3D: 230 variables" in p.stdout
    write_checkpoint(tmp_path / "bad", public_variables["flow_imagenet"],
                     extra={"Flow/inception_i3d/Extra/w": [2]})
    assert_one_line_error(run("d2net_tf.cli.convert_i3d", "--checkpoint", tmp_path / "bad", "--out",
                              tmp_path / "x.weights.h5"), "Flow/inception_i3d/Extra/w", "not mapped")


# ------------------------------------------------------------------------------------ bad videos


def test_bad_videos_end_in_one_clear_error(tmp_path, video_libs):
    import av

    from d2net_tf.features.video import Decoded, VideoError

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    no_frames = write_video(tmp_path / "no_frames.avi", 0, 25)  # AVI keeps a stream without frames
    audio = tmp_path / "audio.wav"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in list(s.encode(frame)) + list(s.encode()):
            c.mux(packet)
    good = write_video(tmp_path / "good.mp4", 40, 25)
    truncated = tmp_path / "truncated.mp4"
    data = open(good, "rb").read()
    truncated.write_bytes(data[:48] + bytes(len(data) - 48))
    cases = {corrupt: "not a readable video", empty: "empty file", no_frames: "no frames",
             audio: "no video stream (streams: audio)", truncated: "truncated.mp4"}
    for path, message in cases.items():
        with pytest.raises(VideoError, match=re.escape(message)) as e:
            list(Decoded(str(path)))
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(VideoError, match="no such file"):
        Decoded(str(tmp_path / "nope.mp4"))


def test_video_shorter_than_a_snippet(tmp_path, extractor):
    from d2net_tf.features.video import VideoError

    with pytest.raises(VideoError, match="15 frames at 25 fps .*fewer than one 16-frame snippet"):
        extractor.extract(write_video(tmp_path / "short.mp4", 15, 25))


# ------------------------------------------------------------------------------------ extraction


def test_extraction_snippets_layout_and_resume(tmp_path, extractor):
    from d2net_tf.data.per_video import load_per_video_dataset
    from d2net_tf.features.extract import FeatureStore

    a = write_video(tmp_path / "a25.mp4", 50, 25, seed=1)  # 50 frames -> 3 snippets
    b = write_video(tmp_path / "b30.mp4", 80, 30, seed=2)  # 67 frames at 25 fps -> 4 snippets
    store = FeatureStore(str(tmp_path / "out"), subset="test")
    results = {}
    for vid, path in (("a25", a), ("b30", b)):
        results[vid] = extractor.extract(path, vid)
        store.add(vid, results[vid])
    assert results["a25"].features.shape == (3, 2048) and results["b30"].features.shape == (4, 2048)
    assert results["b30"].frames == 67 and results["b30"].duration == pytest.approx(80 / 30)
    assert np.isfinite(results["a25"].features).all() and results["a25"].features.dtype == np.float32
    again = extractor.extract(a, "a25")  # deterministic
    np.testing.assert_array_equal(again.features, results["a25"].features)
    # the layout the per-video loader reads
    ds = load_per_video_dataset(store.feature_dir, store.json_path, min_snippets=1)
    assert sorted(ds.video_ids.tolist()) == ["a25", "b30"]
    assert ds.snippets_per_second == 25 / 16 and ds.feature_dim == 2048
    data = json.load(open(store.json_path))
    assert data["database"]["b30"]["duration"] == pytest.approx(80 / 30)
    assert data["database"]["b30"]["subset"] == "test" and data["database"]["b30"]["annotations"] == []
    # resumable; annotations added by the user survive
    data["database"]["a25"]["annotations"] = [{"label": "Jump", "segment": [0.5, 1.5]}]
    json.dump(data, open(store.json_path, "w"))
    store2 = FeatureStore(str(tmp_path / "out"))
    assert store2.done("a25") and store2.done("b30") and not store2.done("c")
    store2.add("b30", results["b30"])
    assert json.load(open(store.json_path))["database"]["a25"]["annotations"][0]["label"] == "Jump"
    assert not [f for f in os.listdir(store.feature_dir) if not f.endswith(".npy")]


def test_mixed_bfloat16_error_is_measured(tmp_path, weights):
    from d2net_tf.features.extract import FeatureExtractor

    ex = FeatureExtractor.from_weights(weights["rgb"], weights["flow"], "mixed_bfloat16", batch_snippets=2, **SMALL)
    feats = ex.extract(write_video(tmp_path / "v.mp4", 32, 25)).features
    e = ex.precision_error
    assert e["snippets"] == 2 and feats.shape == (2, 2048) and feats.dtype == np.float32
    assert 0 < e["relative_l2"] < 0.05


# ------------------------------------------------------------------------------------ command lines

ANNOTATED = {  # video id: (subset, label, segment, moving?)
    "train_a": ("validation", "Jump", [0.2, 1.8]), "train_b": ("validation", "Run", [0.4, 2.0]),
    "train_c": ("validation", "Jump", [0.0, 1.2]), "train_d": ("validation", "Run", [0.6, 2.2]),
    "test_a": ("test", "Jump", [0.2, 1.6]), "test_b": ("test", "Run", [0.3, 2.0]),
}


@pytest.mark.slow
def test_video_to_features_to_detections(tmp_path, weights):
    """End to end: videos -> trainers.extract_features -> trainers.fit (per-video layout) ->
    trainers.localize --video -> detections JSON (+ plot), equal to localizing the stored features."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for i, vid in enumerate(ANNOTATED):
        write_video(videos / f"{vid}.mp4", 60 + 8 * i, 25 if i % 2 else 30, seed=i)
    data = tmp_path / "data"
    small = ["--short_side=40", "--crop=32", "--batch_snippets=4"]
    extract = ["trainers.extract_features", "--videos", videos, "--rgb_weights", weights["rgb"],
               "--flow_weights", weights["flow"], "--out", data, *small]
    p = run(*extract)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "6 videos" in p.stdout and "seconds per second of video: decode" in p.stdout
    gt = json.loads((data / "ground_truth.json").read_text())
    for vid, (subset, label, seg) in ANNOTATED.items():
        gt["database"][vid].update(subset=subset, annotations=[{"label": label, "segment": seg}])
    (data / "ground_truth.json").write_text(json.dumps(gt))
    p = run(*extract)  # resumable: nothing to do, annotations kept
    assert p.returncode == 0 and "6 of 6 videos already extracted" in p.stdout, p.stderr[-2000:]
    model = tmp_path / "model"
    p = run("trainers.fit", "--data_layout=per_video", f"--data_dir={data}", "--feature_dim=2048",
            f"--model_dir={model}", "--num_steps=2", "--eval_every=2", "--checkpoint_every=2", "--batch_size=2",
            "--progress=0", "--select_on=last", "--min_snippets=2")
    assert p.returncode == 0, p.stderr[-3000:]
    out, plot = tmp_path / "det.json", tmp_path / "tcam.png"
    p = run("trainers.localize", "--model_dir", model, "--video", videos / "test_a.mp4", "--rgb_weights",
            weights["rgb"], "--flow_weights", weights["flow"], "--output", out, "--plot", plot, *small)
    assert p.returncode == 0, p.stderr[-3000:]
    det = json.loads(out.read_text())
    assert "test_a" in det["results"] and plot.stat().st_size > 0
    for d in det["results"]["test_a"]:
        assert d["label"] in ("Jump", "Run") and d["segment"][0] < d["segment"][1]
    # the same model on the stored features gives the same detections
    p = run("trainers.localize", "--model_dir", model, "--features", data / "features" / "test_a.npy",
            "--output", tmp_path / "det2.json")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads((tmp_path / "det2.json").read_text())["results"] == det["results"]
    # missing weights: one line that says where to get them
    assert_one_line_error(run("trainers.localize", "--model_dir", model, "--video", videos / "test_a.mp4",
                              "--output", out), "no I3D rgb weights", "kinetics-i3d", "convert_i3d")


def test_extract_features_without_weights_says_where_to_get_them(tmp_path, weights):
    video = write_video(tmp_path / "v.mp4", 20, 25)
    assert_one_line_error(run("trainers.extract_features", "--videos", video, "--out", tmp_path / "o",
                              "--flow_weights", weights["flow"]), "no I3D rgb weights", "kinetics-i3d", "convert_i3d")


@pytest.mark.slow
def test_extract_features_command_line(tmp_path, weights):
    video = write_video(tmp_path / "v.mp4", 20, 25)
    assert_one_line_error(run("trainers.extract_features", "--videos", tmp_path / "none", "--out", tmp_path / "o",
                              "--rgb_weights", weights["rgb"], "--flow_weights", weights["flow"]), "no such file")
    p = run("trainers.extract_features", "--videos", video, "--out", tmp_path / "o", "--rgb_weights",
            weights["rgb"], "--flow_weights", weights["flow"], "--precision=mixed_bfloat16", "--short_side=40",
            "--crop=32")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "mixed_bfloat16 vs float32 on the first 1 snippets" in p.stdout
    assert np.load(tmp_path / "o" / "features" / "v.npy").shape == (1, 2048)
