import json

import pandas as pd
import pytest

from vqa.errors import DatasetError
from vqa.evaluation import (answer_scores, normalize_answer, read_results, score_predictions,
                            vqa_accuracy)


@pytest.mark.parametrize("raw, expected", [
    ("Two.", "2"),
    ("two", "2"),
    ("the cat", "cat"),
    ("A Dog", "dog"),
    ("  yes\n", "yes"),
    ("dont", "don\u2019t"),  # the official table maps to a curly apostrophe
    ("1,000", "1000"),  # a digit comma digit drops all punctuation
    ("3.5", "3.5"),  # a period before a digit stays
    ("red, white", "red white"),
    ("black/white", "black white"),
    ("none", "0"),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9),
                                               (4, 1.0), (10, 1.0)])
def test_ten_answer_steps(matches, expected):
    humans = ["yes"] * matches + ["no"] * (10 - matches)
    assert vqa_accuracy("yes", humans) == pytest.approx(expected)


def test_prediction_is_normalised():
    humans = ["2"] * 4 + ["3"] * 6
    assert vqa_accuracy("Two.", humans) == pytest.approx(1.0)
    assert vqa_accuracy("the cat", ["cat"] * 3 + ["dog"] * 7) == pytest.approx(0.9)


def test_human_answers_normalised_only_when_they_differ():
    # All ten identical: the official evaluator leaves them as they are, so the
    # normalised prediction "black white" does not match "black/white".
    assert vqa_accuracy("black/white", ["black/white"] * 10) == 0.0
    # Not all identical: punctuation is processed, "black/white" becomes "black white".
    assert vqa_accuracy("black/white", ["black/white"] * 9 + ["gray"]) == pytest.approx(1.0)
    # Human answers are not stripped afterwards: "dog?" becomes "dog ", never "dog".
    assert vqa_accuracy("dog", ["dog?"] * 9 + ["cat"]) == 0.0
    # ...but only punctuation: number words in human answers are not mapped.
    assert vqa_accuracy("two", ["two"] * 5 + ["2"] * 5) == pytest.approx(1.0)
    assert vqa_accuracy("2", ["two"] * 9 + ["2"]) == pytest.approx(0.3)


def test_single_reference_is_exact_match_after_normalisation():
    assert vqa_accuracy("Yes.", ["yes"]) == 1.0
    assert vqa_accuracy("a circle", ["circle"]) == 1.0
    assert vqa_accuracy("no", ["yes"]) == 0.0


@pytest.mark.parametrize("humans", [
    ["red"] * 2 + ["Red."] + ["blue"] * 7,
    ["two"] * 10,  # identical: kept raw, so the normalised "2" would score 0
    ["2"] * 3 + ["two"] * 7,
    ["yes"],
    ["Two"],
])
def test_answer_scores_are_the_metric_per_answer(humans):
    scores = answer_scores(humans)
    candidates = {normalize_answer(h) for h in humans}
    assert scores == {c: vqa_accuracy(c, humans) for c in candidates
                      if vqa_accuracy(c, humans) > 0}


def test_answer_scores_values():
    # "Red." is punctuation-processed to "Red", which does not match "red".
    assert answer_scores(["red"] * 2 + ["Red."] + ["blue"] * 7) == pytest.approx(
        {"red": 0.6, "blue": 1.0})
    assert answer_scores(["Two"]) == {"2": 1.0}
    assert answer_scores(["two"] * 10) == {}


def test_human_answers_are_not_stripped():
    assert vqa_accuracy("yes", ["yes "] * 5 + ["no"] * 5) == 0.0


def test_score_predictions_breakdowns_and_rounding():
    questions = pd.DataFrame({
        "question_id": [1, 2, 3],
        "answers": [["yes"] * 10, ["2"] * 2 + ["3"] * 8, ["cat"]],
        "question_type": ["is the", "how many", "what is"],
        "answer_type": ["yes/no", "number", "other"],
    })
    metrics = score_predictions(questions, {1: "yes", 2: "two", 3: "dog"}, "val")
    assert metrics["split"] == "val" and metrics["n_questions"] == 3
    assert metrics["overall"] == round(100 * (1 + 0.6 + 0) / 3, 2) == 53.33
    assert metrics["per_question_type"] == {"how many": 60.0, "is the": 100.0, "what is": 0.0}
    assert metrics["per_answer_type"] == {"number": 60.0, "other": 0.0, "yes/no": 100.0}


def test_missing_prediction_is_an_error():
    questions = pd.DataFrame({"question_id": [1, 2], "answers": [["a"], ["b"]],
                              "question_type": ["x", "x"], "answer_type": ["other"] * 2})
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
