"""benchmarks.fix_effects: a fix's effect from ablation runs, as a difference of means and seed by seed."""

import json

import numpy as np
import pytest

from benchmarks.fix_effects import effect_row, scores


def write_run(folder, seed, at_05, average):
    run = folder / f"d2net-seed{seed}"
    run.mkdir(parents=True)
    mAP = [0.9, 0.8, 0.7, 0.6, at_05 / 100, 0.2, 0.1]
    (run / "results.json").write_text(json.dumps({"tiou_thresholds": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                                                  "mAP": mAP, "average_mAP": average / 100}))


def test_scores_are_read_per_seed(tmp_path):
    for seed, (a, b) in {10: (12.0, 20.0), 2: (14.0, 22.0)}.items():
        write_run(tmp_path, seed, a, b)
    got = scores(str(tmp_path), "d2net")
    assert list(got) == [2, 10]
    np.testing.assert_allclose(got[10], [12.0, 20.0])


def test_scores_of_chosen_seeds_only(tmp_path):
    for seed in (0, 1, 2, 3):
        write_run(tmp_path, seed, 10.0 + seed, 20.0)
    assert list(scores(str(tmp_path), "d2net", {1, 3, 7})) == [1, 3]
    with pytest.raises(SystemExit, match=r"no finished d2net run \(results.json\) of seeds \[5\]"):
        scores(str(tmp_path), "d2net", {5})


def test_effect_row_pairs_the_seeds_both_sides_have(tmp_path):
    base = {0: np.array([10.0, 20.0]), 1: np.array([14.0, 24.0]), 2: np.array([12.0, 22.0])}
    runs = {0: np.array([13.0, 21.0]), 1: np.array([13.0, 26.0]), 3: np.array([20.0, 30.0])}
    cells = [c.strip() for c in effect_row("fix", base, runs).strip("|").split("|")]
    # difference of the means: (46 / 3 - 12, 77 / 3 - 22); same seed (0, 1): +3 and -1 @0.5, +1 and +2 average
    assert cells[:2] == ["fix", "3"]
    assert cells[3] == f"{46 / 3 - 12:+.1f}" and cells[5] == f"{77 / 3 - 22:+.1f}"
    assert cells[6:] == ["+1.0 ± 2.0", "1/2", "+1.5 ± 0.5"]


def test_a_folder_without_finished_runs_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no finished d2net run"):
        scores(str(tmp_path), "d2net")
