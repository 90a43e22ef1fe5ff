"""Tests of d2net_tf.localization (Sec. 3.3 post-processing), nms_1d, temporal_iou and plotting."""

import numpy as np
import pytest

from d2net_tf.errors import D2NetInputError
from d2net_tf.localization import (
    Detections,
    LocalizationConfig,
    iter_localize_videos,
    localize_video,
    localize_videos,
    nms_1d,
    temporal_iou,
)

SPS = 25 / 16
ONE_THRESHOLD = LocalizationConfig(thresholds=(0.5,))


def test_known_segments_in_seconds():
    tcam = np.zeros((40, 3))
    tcam[10:20, 1] = 0.9
    tcam[25:28, 2] = 0.8
    det = localize_video(tcam, np.ones(40), SPS, video_id="v")
    order = np.argsort(det.class_ids)
    assert det.class_ids[order].tolist() == [1, 2]
    np.testing.assert_allclose(det.starts[order], [10 / SPS, 25 / SPS])  # 6.4 s, 16.0 s
    np.testing.assert_allclose(det.ends[order], [20 / SPS, 28 / SPS])  # 12.8 s, 17.92 s
    np.testing.assert_allclose(det.scores[order], [0.9, 0.8])  # the outside is all zeros
    assert det.video_ids.tolist() == ["v", "v"]
    assert det.starts_s is det.starts


def test_outer_inner_at_left_edge():
    tcam = np.array([0.8, 0.8, 0.8, 0.8, 0.3, 0.1, 0, 0, 0, 0])[:, None]
    det = localize_video(tcam, np.ones(10), 1.0, ONE_THRESHOLD)
    # proposal [0, 4): inflation = floor(0.25 * 4 + 0.5) = 1; left side clipped,
    # right side = snippet 4 (0.3): S = 0.8 - 0.3.
    assert (det.starts.tolist(), det.ends.tolist()) == ([0.0], [4.0])
    assert det.scores[0] == pytest.approx(0.5)


def test_outer_inner_at_right_edge():
    tcam = np.array([0, 0, 0.1, 0.2, 0.7, 0.7])[:, None]
    det = localize_video(tcam, np.ones(6), 2.0, ONE_THRESHOLD)
    # proposal [4, 6): inflation 1, outside = snippet 3 (0.2) only.
    assert (det.starts.tolist(), det.ends.tolist()) == ([2.0], [3.0])
    assert det.scores[0] == pytest.approx(0.5)


def test_whole_video_proposal_scores_mean_inside():
    tcam = np.full((5, 1), 0.6)
    det = localize_video(tcam, np.ones(5), 1.0, ONE_THRESHOLD)
    assert det.scores.tolist() == pytest.approx([0.6])
    assert (det.starts.tolist(), det.ends.tolist()) == ([0.0], [5.0])


def test_inflation_of_one_snippet_and_wide_proposals():
    # Width 1: floor(0.25 + 0.5) = 0 -> min_inflation = 1 snippet on each side.
    tcam = np.array([0.0, 0.2, 0.9, 0.4, 0.0])[:, None]
    det = localize_video(tcam, np.ones(5), 1.0, ONE_THRESHOLD)
    assert det.scores[0] == pytest.approx(0.9 - 0.3)
    # Width 6: inflation floor(1.5 + 0.5) = 2 on each side.
    tcam = np.zeros((12, 1))
    tcam[3:9, 0] = 1.0
    tcam[[1, 2, 9, 10], 0] = [0.1, 0.3, 0.2, 0.2]
    det = localize_video(tcam, np.ones(12), 1.0, ONE_THRESHOLD)
    assert det.scores[0] == pytest.approx(1.0 - 0.2)


def test_attention_refines_and_splits():
    tcam = np.zeros((30, 1))
    tcam[5:25, 0] = 0.9
    attention = np.ones(30)
    attention[14:16] = 0.0  # background snippets in the middle
    det = localize_video(tcam, attention, 1.0, ONE_THRESHOLD)
    order = np.argsort(det.starts)
    assert det.starts[order].tolist() == [5.0, 16.0]
    assert det.ends[order].tolist() == [14.0, 25.0]


def test_only_relevant_classes_are_localized():
    tcam = np.zeros((16, 2))
    tcam[2:10, 0] = 0.9  # p_0 = top-2 mean = 0.9
    tcam[12, 1] = 0.8  # p_1 = 0.4 <= 0.45: not relevant
    det = localize_video(tcam, np.ones(16), 1.0)
    assert det.class_ids.tolist() == [0]


def test_final_score_ratio():
    tcam = np.zeros((40, 1))
    tcam[5:15, 0] = 0.95
    tcam[30:33, 0] = [0.55, 0.56, 0.55]  # inner ~0.553, outer (two snippets of 0.5) ...
    tcam[[29, 33], 0] = 0.5
    det = localize_video(tcam, np.ones(40), 1.0, ONE_THRESHOLD)
    # second proposal: S = 0.5533 - 0.5 = 0.053 < 0.1 * 0.95 -> dropped.
    assert det.starts.tolist() == [5.0]


def test_official_options():
    tcam = np.zeros((20, 1))
    tcam[3:9, 0] = 0.9
    tcam[15, 0] = 0.9  # one-snippet proposal
    paper = localize_video(tcam, np.ones(20), 1.0, LocalizationConfig.paper())
    official = localize_video(tcam, np.ones(20), 1.0, LocalizationConfig.official())
    assert sorted(paper.starts.tolist()) == [3.0, 15.0]
    assert official.starts.tolist() == [3.0]  # min_proposal_snippets = 2


def test_official_outer_inner_filter():
    # inner 0.55, outer 1.0: (1 - 0.55 + 1) / 2 = 0.725 > 0.7 -> dropped; the strong segment stays.
    tcam = np.zeros((40, 1))
    tcam[10:18, 0] = 1.0
    tcam[18:22, 0] = 0.55
    tcam[22:24, 0] = 1.0
    cfg = LocalizationConfig(thresholds=(0.5,), max_outer_inner=0.7)
    # One component [10, 24) at 0.5; to isolate the weak part use a threshold of 0.5 on
    # a sequence where the weak part is its own component:
    tcam2 = np.ones((12, 1))
    tcam2[4:8, 0] = 0.6
    tcam2[3, 0] = tcam2[8, 0] = 0.0
    keep = localize_video(tcam2, np.ones(12), 1.0, LocalizationConfig(thresholds=(0.7,), max_outer_inner=0.7))
    # components at 0.7: [0, 3) and [9, 12); both survive the filter.
    assert sorted(keep.starts.tolist()) == [0.0, 9.0]
    weak = np.zeros((10, 1))
    weak[3:7, 0] = 0.55
    weak[[1, 2, 7, 8], 0] = 1.0
    weak[[0, 9], 0] = 0.0
    a = localize_video(weak, np.ones(10), 1.0, LocalizationConfig(thresholds=(0.5,), max_outer_inner=0.7))
    b = localize_video(weak, np.ones(10), 1.0, LocalizationConfig(thresholds=(0.5,)))
    assert len(a) == len(b) == 1  # [1, 9) has inner > outer: not dropped
    assert localize_video(tcam, np.ones(40), 1.0, cfg).starts.tolist() == [10.0]


def test_attention_rescale():
    tcam = np.zeros((20, 1))
    tcam[5:10, 0] = 0.5
    attention = np.full(20, 0.25)
    cfg = LocalizationConfig(thresholds=(0.2,), attention_rescale=2.0)
    det = localize_video(tcam, attention, 1.0, cfg)
    # r = 0.5 * 0.25 * 2 / 0.25 = 1.0 (without rescaling 0.125 < 0.2: nothing).
    assert det.scores.tolist() == pytest.approx([1.0])
    assert len(localize_video(tcam, attention, 1.0, LocalizationConfig(thresholds=(0.2,)))) == 0


def test_presets():
    paper = LocalizationConfig.paper()
    assert paper.thresholds[0] == 0.025 and paper.thresholds[-1] == 0.5 and len(paper.thresholds) == 20
    off = LocalizationConfig.official("thumos14")
    assert off.thresholds[-1] == 0.475 and off.min_proposal_snippets == 2
    assert off.nms_tiou == 0.3 and off.max_outer_inner == 0.7 and off.attention_rescale is None
    assert LocalizationConfig.official("ActivityNet1.2").attention_rescale == 2.0
    with pytest.raises(D2NetInputError, match=r"unknown dataset 'kinetics'"):
        LocalizationConfig.official("kinetics")


def test_empty_and_flat_inputs():
    assert len(localize_video(np.zeros((10, 4)), np.ones(10))) == 0
    assert len(localize_video(np.zeros((0, 4)), np.zeros(0))) == 0
    one = localize_video(np.ones((1, 2)), np.ones(1), 1.0)
    assert one.starts.tolist() == [0.0, 0.0] and one.ends.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "tcam, attention, message",
    [
        (np.zeros(5), np.zeros(5), r"video 'v': tcam must be a 2-D \[snippets, classes\] array, got shape \(5,\)"),
        (np.zeros((5, 2)), np.zeros(4), r"video 'v': attention must have shape \[5\] \(one value per snippet\), got \(4,\)"),
        (np.full((5, 2), np.nan), np.zeros(5), r"video 'v': tcam and attention must be finite"),
    ],
)
def test_bad_inputs(tcam, attention, message):
    with pytest.raises(D2NetInputError, match=message):
        localize_video(tcam, attention, video_id="v")


# --------------------------------------------------------------------------- #
# NMS and tIoU
# --------------------------------------------------------------------------- #
def test_temporal_iou_golden():
    assert temporal_iou([0, 10], [5, 15]) == pytest.approx(5 / 15)
    np.testing.assert_allclose(
        temporal_iou(np.array([[0, 10], [20, 30]]), np.array([[0, 10], [5, 15], [40, 50]])),
        [[1.0, 1 / 3, 0.0], [0.0, 0.0, 0.0]],
    )
    assert temporal_iou([0, 0], [0, 0]) == 0.0


def test_nms_hand_cases():
    starts, ends = np.array([0.0, 1.0, 10.0, 0.0]), np.array([10.0, 11.0, 20.0, 5.0])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # order: 3 (0.95), 0, 1, 2; IoU(3, 0) = 0.5 -> not > 0.5, kept; IoU(0, 1) = 9/11 -> suppressed.
    assert nms_1d(starts, ends, scores, 0.5).tolist() == [3, 0, 2]
    assert nms_1d(starts, ends, scores, 0.4).tolist() == [3, 1, 2]  # IoU(3, 1) = 4/11
    assert nms_1d(starts, ends, scores, 1.0).tolist() == [3, 0, 1, 2]
    assert nms_1d([], [], [], 0.5).tolist() == []
    # equal scores: input order wins.
    assert nms_1d([0, 0], [10, 10], [0.5, 0.5], 0.5).tolist() == [0]
    assert nms_1d([0, 1], [10, 10], [0.5, 0.5], 0.5).tolist() == [0]


# --------------------------------------------------------------------------- #
# Batches, streaming, speed
# --------------------------------------------------------------------------- #
def smooth_tcam(rng, s, c):
    x = rng.normal(size=(s + 16, c))
    kernel = np.hanning(15)
    kernel /= kernel.sum()
    x = np.stack([np.convolve(x[:, j], kernel, mode="same") for j in range(c)], axis=1)[8 : 8 + s]
    return 1 / (1 + np.exp(-6 * x))


def test_localize_videos_streams_a_generator():
    rng = np.random.default_rng(0)
    lengths = [50, 1, 120, 7]
    videos = [(f"v{i}", smooth_tcam(rng, s, 5), rng.random(s)) for i, s in enumerate(lengths)]
    consumed = []

    def gen():
        for item in videos:
            consumed.append(item[0])
            yield item

    stream = iter_localize_videos(gen(), SPS)
    first = next(stream)
    assert consumed == ["v0"]  # lazy
    assert set(first.video_ids.tolist()) <= {"v0"}
    batch = localize_videos(iter(videos), SPS)
    single = Detections.concatenate([localize_video(t, a, SPS, video_id=v) for v, t, a in videos])
    np.testing.assert_array_equal(batch.video_ids, single.video_ids)
    np.testing.assert_allclose(batch.scores, single.scores)
    for v, s in zip(("v0", "v1", "v2", "v3"), lengths):
        sel = batch.video_ids == v
        assert np.all(batch.ends[sel] <= s / SPS + 1e-9)


# --------------------------------------------------------------------------- #
# Plotting
# --------------------------------------------------------------------------- #
def test_plot_tcam_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    from d2net_tf.plotting import plot_tcam

    rng = np.random.default_rng(2)
    tcam = smooth_tcam(rng, 80, 3)
    attention = rng.random(80)
    det = localize_video(tcam, attention, SPS, video_id="v")
    path = str(tmp_path / "fig5.png")
    plot_tcam(path, tcam, attention, det, ["a", "b", "c"], SPS, ground_truth=([0, 2], [1.0, 20.0], [5.0, 30.0]))
    data = open(path, "rb").read()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_localization_imports_without_tensorflow():
    """Evaluation code relies on it: the numpy localization (and the top-k score) pull in no TF."""
    import subprocess
    import sys

    code = "import sys, d2net_tf.localization, d2net_tf.evaluation; assert 'tensorflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_config_round_trip_with_non_default_values():
    from d2net_tf.localization import localization_config

    cfg = localization_config("official", "ActivityNet1.2", 8.5)
    assert cfg.topk_divisor == 8.5 and cfg.attention_rescale == 2.0 and cfg.nms_tiou == 0.3
    assert LocalizationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(D2NetInputError, match="unknown fields"):
        LocalizationConfig.from_dict({**cfg.to_dict(), "nms_iou": 0.5})
    with pytest.raises(D2NetInputError, match="topk_divisor must be > 0"):
        LocalizationConfig(topk_divisor=0.0)
    with pytest.raises(D2NetInputError, match="preset"):
        localization_config("fancy", "thumos14", 8.0)
