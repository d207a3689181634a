"""Captions for training a decoder: their vocabulary, teacher-forcing pairs, batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from vqa.data.batches import VQABatches
from vqa.data.text import PAD, UNK, Vocabulary, tokenize

START, END = "<start>", "<end>"
RESERVED = (PAD, UNK, START, END)  # ids 0-3


def caption_vocabulary(captions: Iterable[str], min_count: int = 1) -> Vocabulary:
    """The reserved tokens, then every word seen `min_count` times, alphabetically."""
    counts = Counter(w for c in captions for w in tokenize(c))
    return Vocabulary([*RESERVED, *sorted(w for w, n in counts.items() if n >= min_count)])


def check_caption_vocabulary(words: Vocabulary) -> None:
    if tuple(words.tokens[:4]) != RESERVED:
        raise ValueError(
            f"A caption vocabulary starts with {list(RESERVED)}. Received: {words.tokens[:4]}"
        )


def encode_captions(
    captions: Iterable[str], words: Vocabulary, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher forcing: [n, length] inputs <start> w1 .. wk and targets w1 .. wk <end>,
    0-padded; a caption of more than length - 1 words keeps its first length - 1."""
    captions = list(captions)
    inputs = np.zeros((len(captions), length), dtype="int32")
    targets = np.zeros((len(captions), length), dtype="int32")
    unk = words.index[UNK]
    for row, caption in enumerate(captions):
        ids = [words.index.get(w, unk) for w in tokenize(caption)][: length - 1]
        inputs[row, : len(ids) + 1] = [words.index[START], *ids]
        targets[row, : len(ids) + 1] = [*ids, words.index[END]]
    return inputs, targets


def decode_ids(ids: Iterable[int], words: Vocabulary) -> list[str]:
    """The words of a decoded id sequence, up to its <end>."""
    out = []
    for i in ids:
        token = words.tokens[int(i)]
        if token in (END, PAD):
            break
        out.append(token)
    return out


class CaptionBatches(VQABatches):
    """({"image", "caption"}, next words, weights) batches: one image per caption; the
    weights are 0 on the padding, so the loss is the mean over real words."""

    def __init__(
        self,
        images,
        image_index: np.ndarray,
        inputs: np.ndarray,
        targets: np.ndarray | None = None,
        **kwargs,
    ):
        super().__init__(images, image_index, inputs, None, about_image=False, **kwargs)
        self.next_words = targets

    @classmethod
    def from_captions(
        cls,
        captions: pd.DataFrame,
        images,
        image_rows: dict[str, int],
        words: Vocabulary,
        length: int,
        **kwargs,
    ) -> CaptionBatches:
        inputs, targets = encode_captions(captions["caption"], words, length)
        index = captions["image_id"].map(image_rows).to_numpy()
        return cls(images, index, inputs, targets, **kwargs)

    def __getitem__(self, i: int):
        rows = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        x = {"image": self.images[self.image_index[rows]], "caption": self.questions[rows]}
        if self.next_words is None:
            return (x,)
        y = self.next_words[rows]
        return x, y, (y != 0).astype("float32")
