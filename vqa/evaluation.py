"""The official VQA accuracy, its answer normalisation, and breakdowns.

Behaviour follows the official evaluator (vqaEval.py in GT-Vision-Lab/VQA's
PythonEvaluationTools), quirks included, so that our numbers equal its numbers on the
same results file:

* the predicted answer is always normalised (punctuation, then number words,
  articles and contractions);
* the human answers get only the punctuation step, and only when the ten of them
  are not all identical;
* a question's accuracy is min(#matching humans / 3, 1) averaged over the ten
  leave-one-out subsets of nine humans (0, 0.3, 0.6, 0.9, 1.0 for 0..4+ matches);
* percentages are rounded to 2 decimals.

A question with a single reference answer (easy-VQA, CLEVR) scores exact match
after normalising both sides.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from vqa import run_dir as files
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError

# The official table, curly apostrophes (U+2019) included: they decide what matches.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn’t’ve", "couldnt’ve": "couldn’t’ve",
    "didnt": "didn’t", "doesnt": "doesn’t", "dont": "don’t", "hadnt": "hadn’t",
    "hadnt’ve": "hadn’t’ve", "hadn'tve": "hadn’t’ve", "hasnt": "hasn’t",
    "havent": "haven’t", "hed": "he’d", "hed’ve": "he’d’ve", "he’dve": "he’d’ve",
    "hes": "he’s", "howd": "how’d", "howll": "how’ll", "hows": "how’s",
    "Id’ve": "I’d’ve", "I’dve": "I’d’ve", "Im": "I’m", "Ive": "I’ve", "isnt": "isn’t",
    "itd": "it’d", "itd’ve": "it’d’ve", "it’dve": "it’d’ve", "itll": "it’ll",
    "let’s": "let’s", "maam": "ma’am", "mightnt": "mightn’t",
    "mightnt’ve": "mightn’t’ve", "mightn’tve": "mightn’t’ve", "mightve": "might’ve",
    "mustnt": "mustn’t", "mustve": "must’ve", "neednt": "needn’t", "notve": "not’ve",
    "oclock": "o’clock", "oughtnt": "oughtn’t", "ow’s’at": "’ow’s’at",
    "’ows’at": "’ow’s’at", "’ow’sat": "’ow’s’at", "shant": "shan’t",
    "shed’ve": "she’d’ve", "she’dve": "she’d’ve", "shouldve": "should’ve",
    "shouldnt": "shouldn’t", "shouldnt’ve": "shouldn’t’ve",
    "shouldn’tve": "shouldn’t’ve", "somebody’d": "somebodyd",
    "somebodyd’ve": "somebody’d’ve", "somebody’dve": "somebody’d’ve",
    "somebodyll": "somebody’ll", "somebodys": "somebody’s", "someoned": "someone’d",
    "someoned’ve": "someone’d’ve", "someone’dve": "someone’d’ve",
    "someonell": "someone’ll", "someones": "someone’s", "somethingd": "something’d",
    "somethingd’ve": "something’d’ve", "something’dve": "something’d’ve",
    "somethingll": "something’ll", "thats": "that’s", "thered": "there’d",
    "thered’ve": "there’d’ve", "there’dve": "there’d’ve", "therere": "there’re",
    "theres": "there’s", "theyd": "they’d", "theyd’ve": "they’d’ve",
    "they’dve": "they’d’ve", "theyll": "they’ll", "theyre": "they’re",
    "theyve": "they’ve", "twas": "’twas", "wasnt": "wasn’t", "wed’ve": "we’d’ve",
    "we’dve": "we’d’ve", "weve": "we've", "werent": "weren’t", "whatll": "what’ll",
    "whatre": "what’re", "whats": "what’s", "whatve": "what’ve", "whens": "when’s",
    "whered": "where’d", "wheres": "where's", "whereve": "where’ve", "whod": "who’d",
    "whod’ve": "who’d’ve", "who’dve": "who’d’ve", "wholl": "who’ll", "whos": "who’s",
    "whove": "who've", "whyll": "why’ll", "whyre": "why’re", "whys": "why’s",
    "wont": "won’t", "wouldve": "would’ve", "wouldnt": "wouldn’t",
    "wouldnt’ve": "wouldn’t’ve", "wouldn’tve": "wouldn’t’ve", "yall": "y’all",
    "yall’ll": "y’all’ll", "y’allll": "y’all’ll", "yall’d’ve": "y’all’d’ve",
    "y’alld’ve": "y’all’d’ve", "y’all’dve": "y’all’d’ve", "youd": "you’d",
    "youd’ve": "you’d’ve", "you’dve": "you’d’ve", "youll": "you’ll", "youre": "you’re",
    "youve": "you’ve",
}
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3",
                 "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
                 "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", ":", "/", "'", "[", "]", '"', "(", ")", "=", "+", "\\", "_", ">", "<",
          "@", "`", ",", "?"]
# The official pattern's lookbehind is malformed ("(?!<=\d)"), so a period is
# stripped unless a digit follows; we keep that behaviour on purpose.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


@functools.lru_cache(maxsize=1 << 16)
def normalize_punctuation(text: str) -> str:
    """The official punctuation step: drop or space out punctuation, strip periods."""
    out = text
    drop_all = _COMMA_STRIP.search(text) is not None
    for p in _PUNCT:
        if drop_all or (p + " " in text or " " + p in text):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def normalize_digits_articles(text: str) -> str:
    """The official word step: lower-case, number words to digits, drop articles."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


@functools.lru_cache(maxsize=1 << 16)  # answers repeat: each kind is normalised once
def normalize_answer(answer: str) -> str:
    """Full normalisation, as the official evaluator applies it to a predicted answer."""
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return normalize_digits_articles(normalize_punctuation(answer))


def vqa_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """Accuracy in [0, 1] of one predicted answer against the reference answers."""
    if len(human_answers) == 0:
        raise ValueError("vqa_accuracy needs at least one reference answer.")
    pred = normalize_answer(prediction)
    if len(human_answers) == 1:
        return float(pred == normalize_answer(human_answers[0]))
    # Human answers are used as they are (not even stripped), as the official code does.
    refs = list(human_answers)
    if len(set(refs)) > 1:
        refs = [normalize_punctuation(a) for a in refs]
    matches = sum(a == pred for a in refs)
    # Leaving out one of the `matches` agreeing humans leaves matches - 1.
    total = matches * min(1.0, (matches - 1) / 3) + (len(refs) - matches) * min(1.0, matches / 3)
    return total / len(refs)


def answer_scores(human_answers: Sequence[str]) -> dict[str, float]:
    """Soft training target: what each distinct normalised answer would score.

    The scores are `vqa_accuracy` itself, so the model is fitted to what it is judged on;
    answers that would score 0 (possible through the evaluator's quirks) are left out.
    """
    candidates = {normalize_answer(a) for a in human_answers}
    scores = {c: vqa_accuracy(c, human_answers) for c in sorted(candidates)}
    return {c: v for c, v in scores.items() if v > 0}


def score_predictions(questions: pd.DataFrame, predictions: Mapping[int, str],
                      split: str) -> dict:
    """Official accuracy of `predictions` (question_id -> answer) on `questions`.

    Every question of `questions` must have a prediction. Returns the metrics.json
    object: split, n_questions, overall, per_question_type, per_answer_type (percent).
    """
    if (questions["answers"].map(len) == 0).any():
        raise DatasetError(f"Split {split} has no answers to score against (VQA's test "
                           "splits are unannotated): submit the predictions in the official "
                           "results format to the VQA evaluation server instead.")
    ids = {int(q) for q in questions["question_id"]}
    missing = sorted(ids - set(predictions))
    if missing:
        raise DatasetError(f"{len(missing)} question(s) of split '{split}' have no "
                           f"predicted answer, e.g. question_id={missing[0]}.")
    extra = sorted(set(predictions) - ids)
    if extra:  # the official loader also insists on exactly the split's questions
        raise DatasetError(f"{len(extra)} predicted answer(s) are for questions not in split "
                           f"'{split}', e.g. question_id={extra[0]}.")
    accuracies = [vqa_accuracy(predictions[int(qid)], list(answers))
                  for qid, answers in zip(questions["question_id"], questions["answers"])]
    metrics = {
        "split": split,
        "n_questions": len(accuracies),
        "overall": _percent(accuracies) if accuracies else 0.0,
        "per_question_type": _breakdown(accuracies, questions["question_type"]),
        "per_answer_type": _breakdown(accuracies, questions["answer_type"]),
    }
    if "question_group" in questions.columns:  # e.g. Sort-of-CLEVR: relational or not
        metrics["per_question_group"] = _breakdown(accuracies, questions["question_group"])
    return metrics


def _percent(values: list[float]) -> float:
    return round(100 * sum(values) / len(values), 2)


def _breakdown(accuracies: list[float], keys: Iterable[str]) -> dict[str, float]:
    """Mean accuracy (percent) per key, keys sorted."""
    groups: dict[str, list[float]] = defaultdict(list)
    for acc, key in zip(accuracies, keys):
        groups[key].append(acc)
    return {k: _percent(v) for k, v in sorted(groups.items())}


def read_results(path: str | Path) -> dict[int, str]:
    """Read a results file in the official format: [{"question_id": int, "answer": str}]."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Results file not found: {path}")
    try:
        rows = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Results file {path} is not valid JSON: {exc}") from None
    if not isinstance(rows, list):
        raise DatasetError(f"Results file {path} must hold a JSON list of "
                           '{"question_id": int, "answer": str} objects.')
    results: dict[int, str] = {}
    for i, row in enumerate(rows):
        qid = row.get("question_id") if isinstance(row, dict) else None
        if (not isinstance(qid, int) or isinstance(qid, bool)
                or not isinstance(row.get("answer"), str)):
            raise DatasetError(f"Results file {path}, entry {i}: expected "
                               f'{{"question_id": int, "answer": str}}. Received: {row!r}')
        if qid in results:
            raise DatasetError(f"Results file {path}, entry {i}: question_id {qid} is "
                               "answered twice.")
        results[qid] = row["answer"]
    return results


def format_metrics(metrics: dict) -> str:
    """A short human-readable table of a metrics dict."""
    lines = [f"split {metrics['split']}: {metrics['n_questions']} questions, "
             f"accuracy {metrics['overall']:.2f}%"]
    for title, key in (("question group", "per_question_group"),
                       ("question type", "per_question_type"),
                       ("answer type", "per_answer_type")):
        if key not in metrics:
            continue
        lines.append(f"  per {title}:")
        width = max((len(k) for k in metrics[key]), default=0)
        lines += [f"    {k:<{width}}  {v:6.2f}%" for k, v in metrics[key].items()]
    return "\n".join(lines)


def evaluate_run(run_dir: str | Path, data: str | Path | PreparedDataset,
                 split: str = "test") -> dict:
    """Answer every question of `split` of a prepared dataset (or its directory) with a
    trained run, and score the answers.

    Writes RUN_DIR/metrics.json and RUN_DIR/predictions.json (official results format)
    and returns the metrics.
    """
    files.check_run_dir(run_dir)
    dataset = data if isinstance(data, PreparedDataset) else PreparedDataset.load(data)
    questions = dataset.split(split)
    # Imported here, after the inputs are checked: it loads TensorFlow, which data_prep
    # (a user of the normaliser above) and `vqa score` never need.
    from vqa.answering import Answerer

    answerer = Answerer.load(run_dir)
    predictions = answerer.predict_dataset(dataset, questions)
    # Written first: for an unannotated split they are what the user came for.
    files.write_json_atomic([{"question_id": int(q), "answer": a}
                             for q, a in predictions.items()], Path(run_dir) / files.PREDICTIONS)
    try:
        metrics = score_predictions(questions, predictions, split)
    except DatasetError as exc:
        raise DatasetError(f"{exc} The predictions are in "
                           f"{Path(run_dir) / files.PREDICTIONS}.") from None
    files.write_json_atomic(metrics, Path(run_dir) / files.METRICS)
    return metrics


def score_results_file(data_dir: str | Path, split: str, results: str | Path) -> dict:
    """Score a results file in the official format against a prepared dataset."""
    questions = PreparedDataset.load(data_dir).split(split)
    return score_predictions(questions, read_results(results), split)
