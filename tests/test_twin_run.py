"""Twin run: 20 steps of our `--preset=official` training step against the transcription
of the official step (benchmarks.official_reference), from identical weights, on the same padded
batches, pairings and dropout masks. Per step L_Dis, LDS, LDV and the total within 1e-4 relative,
x_ref within 1e-5; the final weights within 1e-3 (benchmarks.twin_run: relative differences and
their floor). The 300-step version: `python -m benchmarks.twin_run`.

Needs torch (optional: `pip install torch==2.13.0`); skipped without it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

pytest.importorskip("torch")

from benchmarks.twin_run import TOLERANCES, coverage, forward_check, run_twin, summarize  # noqa: E402

SMALL = dict(steps=20, batch_size=8, feature_dim=48, num_classes=5, max_len=24, pdmi_iter=9, lr=2e-3)


def test_forward_without_padding_equals_transcription():
    diff = forward_check(feature_dim=64, num_classes=5, batch_size=3, length=12)
    assert diff["tcam"] < 1e-5 and diff["embeddings"] < 1e-5, diff


def test_forward_of_unpadded_videos_in_a_padded_batch_equals_transcription():
    diff = forward_check(feature_dim=64, num_classes=5, batch_size=3, length=12, padded=True)
    assert diff["tcam_unpadded_rows"] < 1e-5 and diff["embeddings_unpadded_rows"] < 1e-5, diff


def _assert_twin(result):
    rows = summarize(result)
    table = "\n".join(f"{r['term']}: max {r['max_rel_diff']:.3g} (step {r['at_step']}), "
                      f"first over {r['first_step_over']}" for r in rows)
    for r in rows:
        assert r["first_step_over"] == "-", table
    assert max(result["weights"].values()) <= TOLERANCES["weights"], table


@pytest.mark.parametrize("dropout", [False, True], ids=["dropout0", "shared_masks"])
def test_twin_run_20_steps(dropout):
    result = run_twin(dropout=dropout, seed=0, **SMALL)
    _assert_twin(result)
    cov = coverage(result)
    # the run exercises the official code's edge cases and the denoising schedule
    assert cov["denoising steps"] == 5  # itr 10, 12, 14, 16, 18
    assert cov["optimizer steps (official)"] == SMALL["steps"] - 1  # step 3: no valid video, skipped
    assert cov["steps with a valid video without background"] > 0
    assert cov["steps where a foreground video has no background"] > 0
    assert cov["steps with a repeated bg_idx"] > 0
    assert cov["denoising steps whose snippet term averages over < all valid videos"] > 0
    if not dropout:
        assert cov["steps with a valid video without foreground"] > 0


def test_twin_run_separation_pair_without_background_on_the_cycle():
    """Seed 2: at step 2 two foreground videos have no background video on their cycle of pi
    while batch video 0 has no background: their separation partner is the first background
    video (benchmarks.official_reference.official_pairing_indices)."""
    result = run_twin(dropout=False, seed=2, **dict(SMALL, steps=8))
    assert result["records"][2]["bg_fallback_video0_without_bg"]
    _assert_twin(result)


def test_twin_run_resynchronised_every_step():
    """Our state (weights, Adam moments and step, x_ref) copied into the transcription before
    every step: each step's terms, x_ref and resulting weights agree from identical states."""
    result = run_twin(dropout=True, seed=1, resync=True, **SMALL)
    _assert_twin(result)
    assert all("rel_weights" in r for r in result["records"])
