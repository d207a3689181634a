"""experiments/probes/validation_breakdown.py: a run's scores on its validation images."""

import json
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from validation_breakdown import main, validation_breakdown  # noqa: E402

from vqa.runs import files  # noqa: E402


def test_scores_exactly_the_held_out_questions_and_leaves_the_run_alone(
    tiny_run, tiny_dataset, tmp_path
):
    run, _ = tiny_run
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    held_out = set(json.loads((run / files.VALIDATION_IMAGES).read_text()))
    train = tiny_dataset.split(tiny_dataset.train_split)
    expected = int(train["image_id"].isin(held_out).sum())
    assert 0 < expected < len(train)

    metrics = validation_breakdown(run, tiny_dataset.root)
    assert metrics["split"] == "validation" and metrics["n_questions"] == expected
    assert set(metrics["per_question_type"]) <= set(train["question_type"])
    # The saved model is the best epoch's: its validation accuracy, as fit logged it.
    summary = json.loads((run / files.TRAINING).read_text())
    assert metrics["overall"] == pytest.approx(summary["best_val_vqa_score"], abs=0.01)
    assert main([str(run), str(tiny_dataset.root), "--out", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["overall"] == metrics["overall"]
    # Re-estimating the image encoder's statistics first: in memory, the run left alone.
    rescored = validation_breakdown(run, tiny_dataset.root, batch_norm_images=8)
    assert rescored["n_questions"] == expected
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before


def test_a_directory_that_is_not_a_run_is_refused(tiny_dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="vqa train"):
        validation_breakdown(tmp_path, tiny_dataset.root)
