"""The benchmark records: lookup by any of a dataset's names, and every consumer reading them."""

import json
import os

import numpy as np
import pytest

from d2net_tf import config as C
from d2net_tf.data import synthetic
from d2net_tf.data.benchmarks import (
    ACTIVITYNET12,
    BENCHMARKS,
    THUMOS14,
    benchmark_for,
    feature_rate,
    find_benchmark,
)
from d2net_tf.data.wtalc import load_wtalc_annotations, load_wtalc_dataset, vendored_annotation_dir
from d2net_tf.errors import D2NetInputError


@pytest.mark.parametrize("name,expected", [
    ("thumos14", THUMOS14), ("Thumos14reduced", THUMOS14), ("THUMOS-14", THUMOS14),
    ("activitynet12", ACTIVITYNET12), ("ActivityNet1.2", ACTIVITYNET12), ("activitynet", ACTIVITYNET12),
    ("anet", ACTIVITYNET12),
])
def test_benchmark_for_accepts_every_name_of_a_benchmark(name, expected):
    assert benchmark_for(name) is expected


def test_unknown_dataset_is_an_input_error_or_none():
    assert find_benchmark("kinetics") is None
    with pytest.raises(D2NetInputError, match=r"unknown dataset 'kinetics'"):
        benchmark_for("kinetics")
    assert feature_rate("kinetics") == 25.0 / 16.0


def test_records_hold_the_published_settings():
    assert THUMOS14.splits == ("validation", "test") and ACTIVITYNET12.splits == ("training", "validation")
    assert THUMOS14.tiou_thresholds[THUMOS14.tiou(0.5)] == 0.5 and THUMOS14.tiou(0.5) == 4
    assert ACTIVITYNET12.tiou_thresholds == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    assert all(b.snippets_per_second == 25.0 / 16.0 for b in BENCHMARKS)
    with pytest.raises(D2NetInputError):
        THUMOS14.tiou(0.55)


@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda b: b.name)
def test_presets_apply_the_benchmark_deltas(bench):
    cfg = C.preset("official", bench.name)
    assert cfg.model.num_classes == bench.num_classes
    assert (cfg.model.kernel_size, cfg.model.dilation) == (bench.kernel_size, bench.dilation)
    for field, value in bench.official_model.items():
        assert getattr(cfg.model, field) == value
    for field, value in bench.official_loss.items():
        assert getattr(cfg.loss, field) == value
    assert C.preset("paper", bench.name).loss.alpha_video == bench.paper_alpha


def test_activitynet_official_loss_deltas():
    loss = C.preset("official", "activitynet12").loss
    assert (loss.topk_divisor, loss.bg_threshold, loss.attention_bg_threshold) == (4.0, 0.8, 0.3)
    default = C.LossConfig()
    thumos = C.preset("official", "thumos14").loss
    assert (thumos.topk_divisor, thumos.bg_threshold, thumos.attention_bg_threshold) == (
        default.topk_divisor, default.bg_threshold, default.attention_bg_threshold)


@pytest.mark.parametrize("prefix", [b.file_prefix for b in BENCHMARKS])
def test_annotation_loader_takes_the_records_rate_and_splits(prefix):
    ds = load_wtalc_annotations(vendored_annotation_dir(prefix))
    bench = benchmark_for(ds.name)
    assert bench.file_prefix == prefix
    assert ds.snippets_per_second == bench.snippets_per_second
    assert set(bench.splits) <= set(ds.subsets.tolist())
    assert bool(ds.ambiguous) == bench.has_ambiguous


def test_synthetic_generator_and_loader_agree_with_the_record(tmp_path):
    summary = synthetic.generate("tiny", str(tmp_path))
    bench = benchmark_for(summary["dataset"])
    assert bench is synthetic.PRESETS["tiny"][0] is THUMOS14
    with open(os.path.join(tmp_path, f"{bench.file_prefix}-synthetic.json")) as f:
        assert json.load(f)["snippets_per_second"] == bench.snippets_per_second
    ds = load_wtalc_dataset(str(tmp_path), bench.file_prefix, feature_dim=32)
    assert ds.snippets_per_second == bench.snippets_per_second
    lengths = np.array([f.shape[0] for f in ds.features])
    expected = np.maximum(1, np.round(ds.durations * bench.snippets_per_second))
    np.testing.assert_array_equal(lengths, expected)
    np.testing.assert_array_equal(synthetic.num_snippets(ds.durations), expected)


def _code_tokens(path):
    import tokenize

    with open(path, "rb") as f:
        return [t for t in tokenize.tokenize(f.readline)
                if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]


def _number(text):
    try:
        return float(text)
    except ValueError:  # 0o644, 0x1f, ...
        return None


def test_the_snippet_rate_is_written_once():
    """No module but data/benchmarks.py spells 25 / 16 in code (docstrings may quote it)."""
    import glob
    import tokenize

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    offenders = []
    for path in glob.glob(os.path.join(root, "d2net_tf", "**", "*.py"), recursive=True):
        if path.endswith(os.path.join("data", "benchmarks.py")):
            continue
        toks = [t for t in _code_tokens(path) if t.type != tokenize.STRING]
        for a, b, c in zip(toks, toks[1:], toks[2:]):
            if a.type == c.type == tokenize.NUMBER and b.string == "/" and (_number(a.string), _number(c.string)) == (25, 16):
                offenders.append(f"{os.path.relpath(path, root)}:{a.start[0]}")
    assert not offenders, offenders


def test_every_default_rate_is_the_records():
    from d2net_tf.data.dataset import VideoDataset
    from d2net_tf.data.ground_truth_json import GroundTruthTable, parse_ground_truth
    from d2net_tf.features import protocol

    rate = THUMOS14.snippets_per_second
    assert VideoDataset.__dataclass_fields__["snippets_per_second"].default == rate
    assert GroundTruthTable([], [], [], [], ["a"]).snippets_per_second == rate
    assert parse_ground_truth({"database": {}}, "x").snippets_per_second == rate
    assert protocol.FPS / protocol.SNIPPET_FRAMES == rate
    np.testing.assert_array_equal(synthetic.num_snippets(np.array([16.0, 1.6])), [25, 2])
