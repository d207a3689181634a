"""What training reads: the training split divided by image into the part we fit on
and the validation part (scikit-learn's GroupShuffleSplit; a resumed run keeps its
division), the vocabularies, and each part encoded into batches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from vqa.config import Config
from vqa.data.batches import VQABatches, encode_targets
from vqa.data.text import Vocabulary
from vqa.errors import RunDirError
from vqa.runs import files


@dataclass
class SplitData:
    """One part of the data, encoded and ready to batch."""

    questions: pd.DataFrame
    batches: VQABatches


def split_by_image(
    questions: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Divide questions into (fit, validation) so that no image is in both."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    fit_rows, val_rows = next(splitter.split(questions, groups=questions["image_id"]))
    return questions.iloc[fit_rows].reset_index(drop=True), questions.iloc[val_rows].reset_index(
        drop=True
    )


def resumed_split(
    run: Path, rows: pd.DataFrame, state: dict, fingerprint: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, validation) rows of an unfinished run, divided as when it started (its
    validation_images.json), after checking that the data is the same."""
    if state["data"] != fingerprint:
        raise RunDirError(
            f"{run} holds an unfinished run on other data "
            f"({state['data']}); pass --overwrite to start again."
        )
    return held_out_split(run, rows)


def held_out_split(run: Path, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, validation) rows of `rows` by the run's validation_images.json: the images
    its training held out."""
    held_out = set(json.loads((run / files.VALIDATION_IMAGES).read_text()))
    is_val = rows["image_id"].isin(held_out)
    return rows[~is_val].reset_index(drop=True), rows[is_val].reset_index(drop=True)


def build_vocabularies(
    questions: pd.DataFrame, config: Config, dataset_answers: int | None = None
) -> tuple[Vocabulary, Vocabulary]:
    """Question words and the top answers; `dataset_answers` is the dataset's own
    answer_vocabulary_size, used unless the config sets max_answers."""
    words = Vocabulary.for_questions(questions["question"], config.train.min_word_count)
    answers = Vocabulary.for_answers(
        questions["answer"], config.train.max_answers or dataset_answers
    )
    return words, answers


def encode_split(
    questions: pd.DataFrame,
    images: np.ndarray,
    image_rows: dict[str, int],
    words: Vocabulary,
    answers: Vocabulary,
    config: Config,
    *,
    shuffle: bool,
    drop_unanswerable: bool,
) -> SplitData:
    targets = encode_targets(questions["answers"], answers)
    if drop_unanswerable:
        # A question none of whose answers is in the vocabulary teaches nothing.
        keep = np.asarray(targets.sum(axis=1)).ravel() > 0
        questions, targets = questions[keep].reset_index(drop=True), targets[keep]
    # One gathering thread: with four, a small model's CPU step is 13 ms instead of 17,
    # but under MirroredStrategy the batch order then no longer matches one device's.
    batches = VQABatches.from_questions(
        questions,
        images,
        image_rows,
        words,
        config.model.max_question_length,
        targets,
        batch_size=config.train.batch_size,
        shuffle=shuffle,
        seed=config.train.seed,
        group_by_image=config.train.group_by_image,
    )
    return SplitData(questions, batches)


def describe_image_input(config: Config) -> str:
    """What a run's image input is, in words, for its training.json."""
    model = config.model
    if model.image_encoder != "pretrained":
        return f"a small CNN trained on {model.image_size} px images"
    how = "fine-tuned" if config.train.fine_tune else "frozen"
    return f"{model.backbone} ({how}) at {model.backbone_image_size} px"
