"""Batches of (image, question tokens) -> soft answer targets, for `model.fit`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd
from scipy import sparse

from vqa.data.text import Vocabulary
from vqa.metrics import AnswerScorer


def encode_targets(
    human_answers: Sequence[Sequence[str]], answers: Vocabulary
) -> sparse.csr_matrix:
    """[n_questions, n_answers] sparse VQA scores of every in-vocabulary answer: what
    each answer of the vocabulary would score by the default evaluator."""
    scorer = AnswerScorer(answers.tokens)
    rows, cols, values = [], [], []
    for row, refs in enumerate(human_answers):
        for col, score in scorer(list(refs)).items():
            rows.append(row)
            cols.append(col)
            values.append(score)
    return sparse.csr_matrix(
        (np.asarray(values, dtype="float32"), (rows, cols)),
        shape=(len(human_answers), len(answers)),
    )


class VQABatches(keras.utils.PyDataset):
    """Gathers batches from in-memory arrays; each image is stored once. x is {"image":
    [images, ...], "about_image": [batch] (the row of x["image"] each question is about),
    "question": [batch, L]}: with group_by_image each image of the batch once, else one
    image per question (so that x["image"] has the same length in every full batch: JAX
    compiles the step again for every new shape).

    Args:
        images: the model's image inputs, one row per image: [n, S, S, 3] uint8 pixels,
            or anything indexable by an array of rows (a FeatureCache of grids).
        image_index: [n_questions] row of `images` for each question.
        questions: [n_questions, L] int32 token ids.
        targets: [n_questions, n_answers] sparse scores, or None for prediction.
        shuffle: reshuffle the question order every epoch (training only).
        group_by_image: each image of a batch once, however many of its questions the
            batch holds; with shuffle, each image's questions are also kept together (the
            images are shuffled, and the questions of each), so that a batch of 256
            questions of our scenes (10 an image) holds 26 images instead of 256.
        about_image: False leaves out "about_image" (one image per question), as
            models saved before that input take them.
        workers: threads gathering batches ahead of the model (keras' PyDataset).
    """

    def __init__(
        self,
        images: np.ndarray,
        image_index: np.ndarray,
        questions: np.ndarray,
        targets: sparse.csr_matrix | None = None,
        batch_size: int = 64,
        shuffle: bool = False,
        seed: int = 0,
        workers: int = 1,
        group_by_image: bool = False,
        about_image: bool = True,
    ):
        super().__init__(workers=workers)
        if group_by_image and not about_image:
            raise ValueError(
                "group_by_image needs about_image: a grouped batch carries "
                "each image once, and about_image says which is whose."
            )
        if len(image_index) != len(questions):
            raise ValueError(
                f"image_index and questions differ in length: "
                f"{len(image_index)} != {len(questions)}"
            )
        self.images, self.image_index, self.questions = images, image_index, questions
        self.targets = targets
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.grouped = group_by_image
        self.about_image = about_image
        self.seed = seed
        self.order = np.arange(len(questions))
        self.start_epoch(0)

    @classmethod
    def from_questions(
        cls,
        questions: pd.DataFrame,
        images: np.ndarray,
        image_rows: dict[str, int],
        words: Vocabulary,
        max_length: int,
        targets: sparse.csr_matrix | None = None,
        **kwargs,
    ) -> VQABatches:
        """Batches for the rows of a questions table whose images are rows of `images`."""
        tokens = words.encode_questions(questions["question"], max_length)
        index = questions["image_id"].map(image_rows).to_numpy()
        return cls(images, index, tokens, targets, **kwargs)

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def batch_rows(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch i of this epoch as rows: (questions [batch], images [k], about_image
        [batch], the row of the batch's images each question is about)."""
        rows = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        if self.grouped:
            unique, about_image = np.unique(self.image_index[rows], return_inverse=True)
            return rows, unique, about_image.astype("int32")
        return rows, self.image_index[rows], np.arange(len(rows), dtype="int32")

    def __getitem__(self, i: int):
        rows, image_rows, about_image = self.batch_rows(i)
        x = {
            "image": self.images[image_rows],
            "about_image": about_image,
            "question": self.questions[rows],
        }
        if not self.about_image:
            del x["about_image"]
        if self.targets is None:
            return (x,)
        return x, self.targets[rows].toarray()

    def start_epoch(self, epoch: int) -> None:
        """Order the questions for `epoch`: the same order whenever that epoch is run,
        so a resumed run sees the data as an uninterrupted one would."""
        self.epoch = epoch
        if not self.shuffle:
            return
        rng = np.random.default_rng([self.seed, epoch])
        self.order = rng.permutation(len(self.order))
        if self.grouped:  # sorted, stably, by a random order of the images
            rank = rng.permutation(int(self.image_index.max(initial=-1)) + 1)
            self.order = self.order[np.argsort(rank[self.image_index[self.order]], kind="stable")]

    def on_epoch_end(self) -> None:
        self.start_epoch(self.epoch + 1)
