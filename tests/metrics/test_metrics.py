"""vqa.metrics against the official VQA evaluator's behaviour: hand-made cases for each
of its branches, in both versions, and every figure against the test-side port of its
procedure (official_vqa_eval.py) on a generated ten-answer fixture."""

import hashlib
import json
import random

import official_vqa_eval as official
import pandas as pd
import pytest
from conftest import ROOT

from vqa.evaluation import score_predictions
from vqa.metrics import (
    EVALUATORS,
    answer_scores,
    best_answer,
    normalize_answer,
    normalize_punctuation,
    percent,
    vqa_accuracy,
)
from vqa.metrics.vqa_accuracy import _CONTRACTIONS

# sha256 of json.dumps(sorted(contractions.items())) of vqaEval.py at a013f00 (master);
# the table is the same in the 2017 code.
OFFICIAL_CONTRACTIONS_SHA256 = "3e5960526f62912d3b70896069c43c13d7c21be38d50ca28efbb9095b499454f"


def test_contraction_table_is_the_official_one():
    digest = hashlib.sha256(json.dumps(sorted(_CONTRACTIONS.items())).encode()).hexdigest()
    assert len(_CONTRACTIONS) == 120 and digest == OFFICIAL_CONTRACTIONS_SHA256


def both(prediction, humans):
    return vqa_accuracy(prediction, humans, "2021"), vqa_accuracy(prediction, humans, "2017")


def test_default_is_the_current_evaluator():
    assert vqa_accuracy("Yes", ["yes"] * 10) == vqa_accuracy("Yes", ["yes"] * 10, "2021")


@pytest.mark.parametrize("prediction", ["Yes", "yes.", "YES!", " yes\t", "the yes"])
def test_ten_identical_answers_get_nothing_applied_from_2021(prediction):
    # 2021: the humans agree, so neither side is processed beyond stripping.
    expected_2021 = 1.0 if prediction.strip() == "yes" else 0.0
    assert both(prediction, ["yes"] * 10) == (expected_2021, 1.0)


def test_only_the_digit_article_step_makes_them_match():
    humans = ["two"] * 4 + ["three"] * 6
    assert both("2", humans) == (1.0, 0.0)  # 2017 never maps human number words
    assert both("two", humans) == (1.0, 0.0)  # ...but it maps the prediction's
    humans = ["a dog"] * 3 + ["cat"] * 7
    assert both("the dog", humans) == pytest.approx((0.9, 0.0))
    assert both("dog", humans) == pytest.approx((0.9, 0.0))


def test_surrounding_spaces_in_human_answers():
    assert both("yes", ["yes "] * 5 + ["no"] * 5) == (1.0, 0.0)  # 2017 never strips them
    assert both("yes", ["yes "] * 10) == (1.0, 0.0)
    assert both("yes", ["yes\n"] * 7 + ["yes"] * 3) == (1.0, pytest.approx(0.9))


def test_digit_comma_digit():
    assert normalize_punctuation("1,000") == "1000"  # every mark dropped, not spaced
    assert both("1000", ["1,000"] * 3 + ["1000"] * 2 + ["500"] * 5) == (1.0, 1.0)
    assert both("1,000", ["1,000"] * 10) == (1.0, 0.0)
    assert both("1000", ["1,000"] * 10) == (0.0, 0.0)


def test_hyphen_apostrophe_and_colon():
    # The evaluator's list has "-" but neither "'" nor ":" (its 2015 beta had both).
    assert normalize_answer("t-shirt") == "t shirt"
    assert both("t shirt", ["t-shirt"] * 3 + ["shirt"] * 7) == pytest.approx((0.9, 0.9))
    assert both("t-shirt", ["t-shirt"] * 10) == (1.0, 0.0)
    assert normalize_answer("man's hat") == "man's hat"
    assert normalize_answer("10:30") == "10:30"
    assert both("mans hat", ["man's hat"] * 4 + ["hat"] * 6) == (0.0, 0.0)
    # Contractions come back with a straight apostrophe.
    assert normalize_answer("dont know") == "don't know"
    assert both("dont know", ["don't know"] * 4 + ["no"] * 6) == (1.0, 1.0)


def test_python2_quirks_of_the_punctuation_step():
    # re.UNICODE passed as the count: at most 32 periods go.
    assert normalize_punctuation("." * 40) == "." * 8
    # Python 2's \d is [0-9]: an Arabic-Indic digit is not a digit-comma-digit.
    assert normalize_punctuation("1,\u0662") == "1 \u0662"
    assert normalize_punctuation("3.5") == "3.5"  # a period before a digit stays


@pytest.mark.parametrize(
    "matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)]
)
@pytest.mark.parametrize("evaluator", sorted(EVALUATORS))
def test_leave_one_out_steps(matches, expected, evaluator):
    humans = ["yes"] * matches + ["no"] * (10 - matches)
    assert vqa_accuracy("yes", humans, evaluator) == pytest.approx(expected)


def test_single_reference_is_exact_match_after_normalisation():
    for evaluator in EVALUATORS:
        assert vqa_accuracy("Yes.", ["yes"], evaluator) == 1.0
        assert vqa_accuracy("a circle", ["circle"], evaluator) == 1.0
        assert vqa_accuracy("no", ["yes"], evaluator) == 0.0


def test_unknown_evaluator_is_refused():
    with pytest.raises(
        ValueError,
        match=r"Expected one of \['2017', '2021'\]. "
        r"Received: evaluator='2019'",
    ):
        vqa_accuracy("yes", ["yes"] * 10, "2019")


def test_rounding_is_python2s():
    values = [1.0] + [0.0] * 31  # 3.125 exactly: Python 3 rounds to 3.12
    assert round(100 * sum(values) / len(values), 2) == 3.12
    assert percent(values) == 3.13 == official.py2_round(3.125)
    assert percent([0.3, 0.6, 0.9]) == 60.0


@pytest.mark.parametrize(
    "humans",
    [
        ["red"] * 2 + ["Red."] + ["blue"] * 7,
        ["two"] * 10,
        ["2"] * 3 + ["two"] * 7,
        ["yes "] * 6 + ["no"] * 4,
        ["t-shirt"] * 10,
        ["yes"],
        ["Two"],
    ],
)
@pytest.mark.parametrize("evaluator", sorted(EVALUATORS))
def test_answer_scores_are_the_metric_per_answer(humans, evaluator):
    scores = answer_scores(humans, evaluator)
    assert all(vqa_accuracy(a, humans, evaluator) == s > 0 for a, s in scores.items())
    if len(humans) == 1:  # one label: the normalised answer
        assert scores == {normalize_answer(humans[0]): 1.0}
        return
    # No other typed or normalised form would score.
    for a in {h.strip() for h in humans} | {normalize_answer(h) for h in humans}:
        assert (a in scores) == (vqa_accuracy(a, humans, evaluator) > 0)


def test_training_targets_follow_the_default_evaluator():
    assert answer_scores(["two"] * 10) == {"two": 1.0}  # "2" would score 0
    assert answer_scores(["two"] * 10, "2017") == {}  # nothing can score
    assert answer_scores(["Two"]) == {"2": 1.0}
    assert answer_scores(["red"] * 2 + ["Red."] + ["blue"] * 7) == pytest.approx(
        {"red": 0.9, "Red.": 0.9, "blue": 1.0}
    )
    assert best_answer(["two"] * 10) == "two"
    assert best_answer(["2"] * 5 + ["two"] * 5) == "2"
    assert best_answer(["red"] * 5 + ["blue"] * 5, prefer="red") == "red"
    assert best_answer(["red"] * 5 + ["blue"] * 5) == "blue"


# --- every figure against the port of the official procedure ---------------------------

POOLS = {
    "yes/no": ["yes", "no", "Yes", "yes.", "no ", " yes", "YES", "yes\n", "nope"],
    "number": [
        "2",
        "two",
        "Two",
        "3",
        "three",
        "1,000",
        "1000",
        "2.5",
        "10",
        "ten",
        "none",
        "0",
        "1,\u0662",
        "one.",
        "a 2",
    ],
    "other": [
        "red",
        "Red",
        "the red one",
        "red one",
        "frisbee",
        "a frisbee",
        "t-shirt",
        "t shirt",
        "tshirt",
        "man's hat",
        "mans hat",
        "dont know",
        "don't know",
        "black/white",
        "black white",
        "black & white",
        "hot-dog",
        "blue;green",
        "10:30",
        "ok!",
        "(left)",
        "left",
        "a.b.c",
        "caf\u00e9",
        "Caf\u00e9",
        "\tcat",
        "...........................................",
    ],
}
QUESTION_TYPES = {
    "yes/no": ["is the", "are there", "does the"],
    "number": ["how many", "what number is"],
    "other": ["what color is the", "what is the man", "which", "what"],
}


def ten_answer_fixture(n_questions, seed):
    """Official-format annotations (ten answer dicts each) and a results file whose
    answers are human answers as typed, other pool answers and misses, shuffled."""
    rng = random.Random(seed)
    annotations, results = [], []
    for qid in range(1, n_questions + 1):
        atype = rng.choice(sorted(POOLS))
        pool = POOLS[atype]
        style = rng.random()
        if style < 0.25:  # all ten typed alike
            answers = [rng.choice(pool)] * 10
        else:
            main = rng.choice(pool)
            answers = [main if rng.random() < style else rng.choice(pool) for _ in range(10)]
        annotations.append(
            {
                "question_id": qid,
                "question_type": rng.choice(QUESTION_TYPES[atype]),
                "answer_type": atype,
                "answers": [
                    {"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                    for i, a in enumerate(answers)
                ],
            }
        )
        prediction = rng.choice(answers + pool + ["zzz"])
        results.append({"question_id": qid, "answer": prediction})
    rng.shuffle(results)
    return annotations, results


def ours(annotations, results, evaluator):
    questions = pd.DataFrame(
        {
            "question_id": [a["question_id"] for a in annotations],
            "answers": [[x["answer"] for x in a["answers"]] for a in annotations],
            "question_type": [a["question_type"] for a in annotations],
            "answer_type": [a["answer_type"] for a in annotations],
        }
    )
    predictions = {r["question_id"]: r["answer"] for r in results}
    return score_predictions(questions, predictions, "val", evaluator)


@pytest.mark.parametrize("evaluator", sorted(EVALUATORS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_figure_equals_the_official_procedure(evaluator, seed):
    annotations, results = ten_answer_fixture(600, seed)
    expected = official.evaluate(annotations, results, evaluator)
    got = ours(annotations, results, evaluator)
    assert got["evaluator"] == evaluator and got["n_questions"] == 600
    assert got["overall"] == expected["overall"]
    assert got["per_question_type"] == dict(sorted(expected["perQuestionType"].items()))
    assert got["per_answer_type"] == dict(sorted(expected["perAnswerType"].items()))


def test_the_two_evaluators_differ_on_the_fixture():
    annotations, results = ten_answer_fixture(600, 0)
    a, b = ours(annotations, results, "2021"), ours(annotations, results, "2017")
    assert a["overall"] != b["overall"]
    assert a["per_answer_type"] != b["per_answer_type"]


def test_the_readme_example_gives_what_it_says():
    page = (ROOT / "docs" / "metric.md").read_text()
    block = page.split("# The metric", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    lines = block.strip().splitlines()
    exec(lines[0], namespace)
    for line in lines[1:]:
        code, comment = line.split("#", 1)
        assert eval(code, namespace) == float(comment.split(":")[0]), line


def test_questions_are_summed_in_the_annotations_order():
    """The official evaluator sums in its annotations file's order, whatever the results
    file's order; on this fixture the two orders round differently (57.88 / 57.87)."""
    annotations, results = ten_answer_fixture(80, 9)  # results shuffled
    order = {r["question_id"]: i for i, r in enumerate(results)}
    in_results_order = sorted(annotations, key=lambda a: order[a["question_id"]])
    expected = official.evaluate(annotations, results)
    assert expected["overall"] != official.evaluate(in_results_order, results)["overall"]
    assert ours(annotations, results, "2021")["overall"] == expected["overall"] == 57.88


@pytest.mark.parametrize("evaluator", sorted(EVALUATORS))
def test_vocabulary_targets_are_the_metric_of_every_answer(evaluator):
    """AnswerScorer gives each candidate exactly vqa_accuracy, candidates no human typed
    included ("two" against humans who typed "2")."""
    from vqa.metrics import AnswerScorer

    vocabulary = sorted(
        {a.strip() for pool in POOLS.values() for a in pool}
        | {normalize_answer(a) for pool in POOLS.values() for a in pool} - {""}
    )
    scorer = AnswerScorer(vocabulary, evaluator)
    annotations, _ = ten_answer_fixture(300, 5)
    humans_list = [[x["answer"] for x in a["answers"]] for a in annotations]
    humans_list += [["yes"], ["Two"], ["a"]]
    for humans in humans_list:
        got = scorer(humans)
        want = {i: vqa_accuracy(c, humans, evaluator) for i, c in enumerate(vocabulary)}
        assert got == {i: s for i, s in want.items() if s > 0}, humans


def test_an_answer_no_human_typed_gets_its_target():
    from vqa.metrics import AnswerScorer

    scorer = AnswerScorer(["2", "two", "yes", "t-shirt"])
    assert scorer(["2"] * 6 + ["3"] * 4) == {0: 1.0, 1: 1.0}
    assert scorer(["t shirt"] * 6 + ["shirt"] * 4) == {3: 1.0}
    assert scorer(["two"] * 10) == {1: 1.0}  # all agree: "two" only
