import json

import pandas as pd
import pytest

from vqa.errors import DatasetError
from vqa.evaluation import format_metrics, read_results, score_predictions


def test_score_predictions_breakdowns_and_rounding():
    questions = pd.DataFrame(
        {
            "question_id": [1, 2, 3],
            "answers": [["yes"] * 10, ["2"] * 2 + ["3"] * 8, ["cat"]],
            "question_type": ["is the", "how many", "what is"],
            "answer_type": ["yes/no", "number", "other"],
        }
    )
    metrics = score_predictions(questions, {1: "yes", 2: "two", 3: "dog"}, "val")
    assert metrics["split"] == "val" and metrics["n_questions"] == 3
    assert metrics["evaluator"] == "2021"
    assert "(VQA evaluator 2021)" in format_metrics(metrics)
    assert metrics["overall"] == round(100 * (1 + 0.6 + 0) / 3, 2) == 53.33
    assert metrics["per_question_type"] == {"how many": 60.0, "is the": 100.0, "what is": 0.0}
    assert metrics["per_answer_type"] == {"number": 60.0, "other": 0.0, "yes/no": 100.0}


def test_the_evaluator_is_chosen_and_recorded():
    questions = pd.DataFrame(
        {
            "question_id": [1],
            "answers": [["yes "] * 10],
            "question_type": ["is the"],
            "answer_type": ["yes/no"],
        }
    )
    assert score_predictions(questions, {1: "yes"}, "val")["overall"] == 100.0
    old = score_predictions(questions, {1: "yes"}, "val", evaluator="2017")
    assert old["overall"] == 0.0 and old["evaluator"] == "2017"
    with pytest.raises(ValueError, match="evaluator"):
        score_predictions(questions, {1: "yes"}, "val", evaluator="2016")


def test_missing_prediction_is_an_error():
    questions = pd.DataFrame(
        {
            "question_id": [1, 2],
            "answers": [["a"], ["b"]],
            "question_type": ["x", "x"],
            "answer_type": ["other"] * 2,
        }
    )
    with pytest.raises(DatasetError, match="question_id=2"):
        score_predictions(questions, {1: "a"}, "test")


def test_read_results_validates(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"question_id": 5, "answer": "yes"}]))
    assert read_results(good) == {5: "yes"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question_id": "5", "answer": "yes"}]))
    with pytest.raises(DatasetError, match="entry 0"):
        read_results(bad)
    with pytest.raises(DatasetError, match="not found"):
        read_results(tmp_path / "missing.json")
