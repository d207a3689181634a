"""Scoring predictions with the official VQA accuracy: per split, per question type,
per answer type (and per question group where a dataset has one); reading results
files in the official format; `evaluate_run`, which answers a split with a trained run.

Where an evaluation is kept (`evaluation_dir`): a run's evaluation on its own dataset's
test split (what its model card reports) in the run itself, RUN/metrics.json; any other
dataset or split in RUN/evaluations/<dataset>-<id>/<split>/, so that no evaluation
replaces another.

The metric itself, and its two evaluator versions, live in `vqa.metrics`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError
from vqa.metrics import DEFAULT_EVALUATOR, check_evaluator, percent, vqa_accuracy
from vqa.runs import atomic, files
from vqa.runs.model_card import add_accuracy


def score_predictions(
    questions: pd.DataFrame,
    predictions: Mapping[int, str],
    split: str,
    evaluator: str = DEFAULT_EVALUATOR,
) -> dict:
    """Official accuracy of `predictions` (question_id -> answer) on `questions`.

    Every question of `questions` must have a prediction, and no other. Questions are
    summed in the order of `questions` (the official evaluator sums in its annotations
    file's order, which data_prep.vqa keeps). Returns the metrics.json object: split,
    evaluator, n_questions, overall, per_question_type, per_answer_type (percent).
    """
    check_evaluator(evaluator)
    if (questions["answers"].map(len) == 0).any():
        raise DatasetError(
            f"Split {split} has no answers to score against (VQA's test "
            "splits are unannotated): submit the predictions in the official "
            "results format to the VQA evaluation server instead."
        )
    ids = {int(q) for q in questions["question_id"]}
    missing = sorted(ids - set(predictions))
    if missing:
        raise DatasetError(
            f"{len(missing)} question(s) of split '{split}' have no "
            f"predicted answer, e.g. question_id={missing[0]}."
        )
    extra = sorted(set(predictions) - ids)
    if extra:  # the official loader also insists on exactly the split's questions
        raise DatasetError(
            f"{len(extra)} predicted answer(s) are for questions not in split "
            f"'{split}', e.g. question_id={extra[0]}."
        )
    accuracies = [
        vqa_accuracy(predictions[int(qid)], list(refs), evaluator)
        for qid, refs in zip(questions["question_id"], questions["answers"])
    ]
    metrics = {
        "split": split,
        "evaluator": evaluator,
        "n_questions": len(accuracies),
        "overall": percent(accuracies) if accuracies else 0.0,
        "per_question_type": _breakdown(accuracies, questions["question_type"]),
        "per_answer_type": _breakdown(accuracies, questions["answer_type"]),
    }
    if "question_group" in questions.columns:  # e.g. Sort-of-CLEVR: relational or not
        metrics["per_question_group"] = _breakdown(accuracies, questions["question_group"])
    return metrics


def _breakdown(accuracies: list[float], keys: Iterable[str]) -> dict[str, float]:
    """Mean accuracy (percent) per key, keys sorted."""
    groups: dict[str, list[float]] = defaultdict(list)
    for acc, key in zip(accuracies, keys):
        groups[key].append(acc)
    return {k: percent(v) for k, v in sorted(groups.items())}


def read_results(path: str | Path) -> dict[int, str]:
    """Read a results file in the official format: [{"question_id": int, "answer": str}]."""
    return _answers(_results_rows(path), Path(path))


def _results_rows(path: str | Path) -> list:
    """The JSON list a results file holds (answers' or captions')."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Results file not found: {path}")
    try:
        rows = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Results file {path} is not valid JSON: {exc}") from None
    if not isinstance(rows, list):
        raise DatasetError(
            f"Results file {path} must hold a JSON list of "
            '{"question_id": int, "answer": str} objects.'
        )
    return rows


def _answers(rows: list, path: Path) -> dict[int, str]:
    """question_id -> answer of a results file's rows, each checked."""
    results: dict[int, str] = {}
    for i, row in enumerate(rows):
        qid = row.get("question_id") if isinstance(row, dict) else None
        if (
            not isinstance(qid, int)
            or isinstance(qid, bool)
            or not isinstance(row.get("answer"), str)
        ):
            raise DatasetError(
                f"Results file {path}, entry {i}: expected "
                f'{{"question_id": int, "answer": str}}. Received: {row!r}'
            )
        if qid in results:
            raise DatasetError(
                f"Results file {path}, entry {i}: question_id {qid} is answered twice."
            )
        results[qid] = row["answer"]
    return results


def format_metrics(metrics: dict) -> str:
    """A short human-readable table of a metrics dict (answers' or captions')."""
    if metrics.get("task") == "captioning":
        return format_caption_metrics(metrics)
    evaluator = f" (VQA evaluator {metrics['evaluator']})" if "evaluator" in metrics else ""
    lines = [
        f"split {metrics['split']}: {metrics['n_questions']} questions, "
        f"accuracy {metrics['overall']:.2f}%{evaluator}"
    ]
    for title, key in (
        ("question group", "per_question_group"),
        ("question type", "per_question_type"),
        ("answer type", "per_answer_type"),
    ):
        if key not in metrics:
            continue
        lines.append(f"  per {title}:")
        width = max((len(k) for k in metrics[key]), default=0)
        lines += [f"    {k:<{width}}  {v:6.2f}%" for k, v in metrics[key].items()]
    return "\n".join(lines)


def default_split(dataset: PreparedDataset) -> str:
    """test if it has answers, else the first annotated split that is not trained on."""
    answered = dataset.questions[dataset.questions["answer"] != ""]
    splits = [s for s in sorted(answered["split"].unique()) if s != dataset.train_split]
    if "test" in splits:
        return "test"
    if not splits:
        raise DatasetError(
            f"{dataset.root} has no annotated split besides the training split to compare on."
        )
    return splits[0]


def trained_on(run_dir: str | Path, dataset: PreparedDataset) -> bool:
    """Whether the run was trained on `dataset`: the same directory where the run
    recorded it, else (runs before it did) a dataset of the same name."""
    run = Path(run_dir)
    for name in (files.TRAINING, files.MODEL_CARD):
        if (run / name).is_file():
            known = json.loads((run / name).read_text())
            if "data" in known:
                return Path(known["data"]) == dataset.root.resolve()
            if "dataset" in known:
                return known["dataset"] == dataset.name
    return True  # nothing recorded: the run's directory is all there is


def evaluation_dir(
    run_dir: str | Path, dataset: PreparedDataset, split: str, own_split: str | None = None
) -> Path:
    """The directory that keeps the run's evaluation on `split` of `dataset`: the run
    itself for its own dataset's `own_split` (by default `default_split`: test where it
    is annotated; test for a captioning run), else
    RUN/evaluations/<dataset>-<id>/<split>/, the id a hash of the dataset's directory
    (two generated sets share a name)."""
    run = Path(run_dir)
    if own_split is None and files.is_caption_run(run):
        own_split = "test"
    if own_split is None:
        try:
            own_split = default_split(dataset)
        except DatasetError:
            own_split = None
    if split == own_split and trained_on(run, dataset):
        return run
    where = hashlib.sha1(str(dataset.root.resolve()).encode()).hexdigest()[:8]
    return run / files.EVALUATIONS / f"{dataset.name}-{where}" / split


def check_split(run_dir: str | Path, dataset: PreparedDataset, split: str) -> None:
    """Raise unless `run_dir` holds a trained run and `dataset` has `split` for its task:
    captions for a captioning run, questions for a VQA run. Keras-free: a command calls
    it before TensorFlow loads."""
    if files.is_caption_run(run_dir):
        files.check_run_dir(run_dir, files.NEEDED_TO_CAPTION)
        dataset.caption_split(split)
    else:
        files.check_run_dir(run_dir)
        dataset.split(split)


def evaluate_run(
    run_dir: str | Path,
    data: str | Path | PreparedDataset,
    split: str = "test",
    evaluator: str = DEFAULT_EVALUATOR,
    *,
    decode: str = "greedy",
    meteor: bool = True,
    **decoding,
) -> dict:
    """Answer every question of `split` of a prepared dataset (or its directory) with a
    trained run, and score the answers; or, with a captioning run, caption every image of
    the split and score the captions (`evaluate_captioner`: `decode`, `meteor` and
    `decoding` are its).

    Writes metrics.json and predictions.json (official results format) into
    `evaluation_dir(...)` (the run itself, and its model card's accuracy, for its own
    test split; nothing there is replaced by another dataset or split) and returns the
    metrics; `evaluator` names the official evaluator's version
    (`vqa.metrics.EVALUATORS`).
    """
    if files.is_caption_run(run_dir):
        return evaluate_captioner(run_dir, data, split, decode, meteor, **decoding)
    check_evaluator(evaluator)
    files.check_run_dir(run_dir)
    dataset = data if isinstance(data, PreparedDataset) else PreparedDataset.load(data)
    questions = dataset.split(split)
    # Imported here, after the inputs are checked: it loads TensorFlow, which data_prep
    # (a user of the normaliser above) and `vqa score` never need.
    from vqa.answering import Answerer

    answerer = Answerer.load(run_dir)
    predictions = answerer.predict_dataset(dataset, questions)
    out = evaluation_dir(run_dir, dataset, split)
    out.mkdir(parents=True, exist_ok=True)
    # Written first: for an unannotated split they are what the user came for.
    atomic.write_json(
        [{"question_id": int(q), "answer": a} for q, a in predictions.items()],
        out / files.PREDICTIONS,
    )
    try:
        metrics = score_predictions(questions, predictions, split, evaluator)
    except DatasetError as exc:
        raise DatasetError(f"{exc} The predictions are in {out / files.PREDICTIONS}.") from None
    atomic.write_json(metrics, out / files.METRICS)
    if out == Path(run_dir):
        add_accuracy(run_dir, metrics)
    return metrics


def score_results_file(
    data_dir: str | Path, split: str, results: str | Path, evaluator: str = DEFAULT_EVALUATOR
) -> dict:
    """Score a results file in the official format against a prepared dataset: answers
    [{"question_id", "answer"}] by VQA accuracy (`evaluator`), or captions
    [{"image_id", "caption"}] as `score_captions_of` does."""
    check_evaluator(evaluator)
    dataset = PreparedDataset.load(data_dir)
    rows = _results_rows(results)
    if rows and isinstance(rows[0], dict) and "caption" in rows[0]:
        return score_captions_of(dataset, split, rows)
    return score_predictions(dataset.split(split), _answers(rows, Path(results)), split, evaluator)


def score_captions_of(
    dataset: PreparedDataset, split: str, results: list[dict], meteor: bool = True
) -> dict:
    """BLEU-1..4, ROUGE-L, CIDEr-D (and METEOR with Java) of COCO-format caption results
    [{"image_id", "caption"}] against the split's reference captions, as the COCO
    caption evaluation computes them (vqa.metrics.captions); plus the distinct bigrams of
    the results, a measure of their variety."""
    from vqa.metrics.captions import distinct_ngrams, score_captions, tokenize

    refs = dataset.caption_split(split).groupby("image_id")["caption"].apply(list).to_dict()
    hyps: dict[str, str] = {}
    for i, row in enumerate(results):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("caption"), str)
            or "image_id" not in row
        ):
            raise DatasetError(
                f"caption results, entry {i}: expected an object with "
                f'"image_id" and a string "caption". Received: {row!r}'
            )
        image_id = str(row["image_id"])
        if image_id in hyps:
            raise DatasetError(
                f"caption results, entry {i}: image_id {image_id!r} appears "
                "twice; give one caption per image."
            )
        hyps[image_id] = row["caption"]
    try:
        scores = score_captions(refs, hyps, meteor=meteor)
    except ValueError as exc:  # e.g. an image of the results that the split lacks
        raise DatasetError(
            f"caption results against {dataset.root}, split {split}: {exc}"
        ) from None
    return {
        "split": split,
        "task": "captioning",
        "n_images": len(hyps),
        **{k: round(100 * v, 2) for k, v in scores.items()},
        "distinct_bigrams": distinct_ngrams([tokenize(c) for c in hyps.values()], 2),
    }


def format_caption_metrics(metrics: dict) -> str:
    names = [
        k
        for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")
        if k in metrics
    ]
    head = f"split {metrics['split']}: {metrics['n_images']} images"
    if "decode" in metrics:
        head += f", {metrics['decode']} decoding"
    return "\n".join(
        [
            head,
            *(f"  {k:<8} {metrics[k]:6.2f}" for k in names),
            f"  distinct bigrams {metrics['distinct_bigrams']}",
        ]
    )


def evaluate_captioner(
    run_dir: str | Path,
    data: str | Path | PreparedDataset,
    split: str = "test",
    decode: str = "greedy",
    meteor: bool = True,
    **decoding,
) -> dict:
    """Caption every image of a captions split with a trained captioning run and score
    the captions. Writes captions-SPLIT-DECODE.json (COCO results format) and
    metrics.json (the last evaluation of that dataset and split) into
    `evaluation_dir(...)`: the run itself for its own test split, and returns the
    metrics."""
    files.check_run_dir(run_dir, files.NEEDED_TO_CAPTION)
    dataset = data if isinstance(data, PreparedDataset) else PreparedDataset.load(data)
    dataset.caption_split(split)
    from vqa.captioning import Captioner

    results = Captioner.load(run_dir).caption_dataset(dataset, split, decode, **decoding)
    out = evaluation_dir(run_dir, dataset, split)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(results, out / f"captions-{split}-{decode}.json")
    metrics = {
        **score_captions_of(dataset, split, results, meteor),
        "decode": decode,
        **{k: v for k, v in decoding.items() if v is not None},
    }
    atomic.write_json(metrics, out / files.METRICS)
    return metrics
