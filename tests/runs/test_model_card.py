"""The model card: what a run was trained on, shown beside its answers, and the warnings
for a question outside it."""

import json

from conftest import draw_shape

from vqa.runs import files
from vqa.runs.model_card import summary, warnings_for


def test_warnings_for_unknown_words_and_answer_types():
    words = ["how", "many", "people", "are", "there"]
    notes = warnings_for(words, ["how", "many", "people"], "no")
    assert notes == [
        "the model does not know 3 of the question's 5 words: the answer is a guess",
        "the question asks for a number; 'no' is not one",
    ]
    assert warnings_for(["is", "it", "red"], [], "blue") == ["a yes/no question answered 'blue'"]
    assert warnings_for(["what", "color", "is", "it"], [], "yes") == [
        "an open question (what...) answered 'yes'"
    ]
    assert warnings_for(["how", "many", "dogs"], [], "3") == []
    assert warnings_for(["is", "there", "a", "dog"], ["dog"], "yes") == []  # 1 of 4 unknown


def test_a_trained_run_carries_its_card(tiny_run, tiny_dataset):
    from vqa.answering import Answerer
    from vqa.evaluation import evaluate_run

    run, summary_ = tiny_run
    card = json.loads((run / files.MODEL_CARD).read_text())
    assert card["dataset"] == "tiny" and card["answers"] == summary_["n_answers"] == 6
    assert card["image"] == "a small CNN trained on 32 px images"
    assert set(card["question_types"]) == {"color", "shape", "yes/no"}
    metrics = evaluate_run(run, tiny_dataset, "test")
    card = json.loads((run / files.MODEL_CARD).read_text())
    assert card["accuracy"]["overall"] == metrics["overall"]
    answerer = Answerer.load(run)
    line = answerer.summary
    assert (
        line.startswith("trained on tiny (") and f"test accuracy {metrics['overall']:.2f}%" in line
    )
    result = answerer.answer(draw_shape("red", "circle"), "how many zebras are there?")
    if not result.answer.isdigit():  # the tiny data has no numbers: it cannot be one
        assert "the question asks for a number" in " ".join(result.warnings)
    assert any("does not know" in w for w in result.warnings)  # zebras, many, how, are


def test_a_run_without_a_card_has_no_summary():
    assert summary(None) is None
