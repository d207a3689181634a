"""Plain-Python question tokenizer and vocabularies, saved as JSON.

No string graph ops: answering a question costs a dict lookup per word.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqa.errors import QuestionError

PAD, UNK = "<pad>", "<unk>"
# Words of any script ("café", "что"); an apostrophe inside a word stays ("don't").
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def check_question(question: object) -> str:
    """Return `question` if it is a non-empty string, else raise QuestionError."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError(f"The question is empty. Received: {question!r}")
    return question


def tokenize(question: str) -> list[str]:
    """Lower-case words; punctuation and extra spaces are dropped."""
    return _WORD.findall(question.lower().replace("\u2019", "'"))


@dataclass(frozen=True)
class Encoded:
    ids: np.ndarray  # [max_length] int32, 0-padded at the end
    unknown_words: list[str]
    truncated: bool


class Vocabulary:
    """An ordered list of tokens with a reverse index.

    Question vocabularies reserve id 0 for padding and id 1 for unknown words;
    answer vocabularies have no reserved entries.
    """

    def __init__(self, tokens: Iterable[str]):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("Vocabulary tokens must be unique.")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @classmethod
    def for_questions(cls, questions: Iterable[str], min_count: int = 1) -> Vocabulary:
        counts = Counter(w for q in questions for w in tokenize(q))
        words = sorted(w for w, c in counts.items() if c >= min_count)
        return cls([PAD, UNK, *words])

    @classmethod
    def for_answers(cls, answers: Iterable[str], max_size: int | None) -> Vocabulary:
        """The `max_size` most frequent answers (all of them for None)."""
        # Most frequent first; ties broken alphabetically so the order is reproducible.
        counts = Counter(answers)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(a for a, _ in ranked[:max_size])

    def encode_question(self, question: str, max_length: int) -> Encoded:
        words = tokenize(question)
        unk = self.index[UNK]
        ids = [self.index.get(w, unk) for w in words]
        unknown = [w for w in words if w not in self.index]
        out = np.zeros(max_length, dtype="int32")
        out[: min(len(ids), max_length)] = ids[:max_length]
        return Encoded(out, unknown, len(ids) > max_length)

    def encode_questions(self, questions: Iterable[str], max_length: int) -> np.ndarray:
        """[n, width] token ids, 0-padded at the end; width is the longest question's
        length, at most `max_length` (the recurrent encoder then runs no more steps than
        the longest question needs; its mask makes the padding's width irrelevant)."""
        rows = [self.encode_question(q, max_length).ids for q in questions]
        if not rows:
            return np.zeros((0, 1), dtype="int32")
        tokens = np.stack(rows)
        width = max(1, int((tokens != 0).sum(axis=1).max()))
        return tokens[:, :width]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.tokens, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        tokens = json.loads(Path(path).read_text())
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{path} must hold a JSON list of strings.")
        return cls(tokens)


def load_word_vectors(
    path: str | Path, vocabulary: Vocabulary, dim: int, seed: int = 0
) -> tuple[np.ndarray, float]:
    """An embedding matrix [len(vocabulary), dim] initialised from a GloVe-format text
    file ("word v1 v2 ... vdim" per line), and the share of words it covered.

    The file is streamed and only the vocabulary's words are kept, so an 800k-word file
    costs no more memory than the matrix. Words it lacks start small and random; the
    padding row is zero.
    """
    from vqa.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"word_vectors file not found: {path}")
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 0.1, size=(len(vocabulary), dim)).astype("float32")
    matrix[vocabulary.index[PAD]] = 0.0
    found = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            row = vocabulary.index.get(word)
            if row is None or word in (PAD, UNK):
                continue
            values = rest.split()
            if len(values) != dim:
                raise ConfigError(
                    f"{path}, line {line_no}: {len(values)} values for "
                    f"{word!r}, but embedding_dim is {dim}. Set "
                    "model.embedding_dim to the file's dimension."
                )
            try:
                matrix[row] = np.asarray(values, dtype="float32")
            except ValueError:
                raise ConfigError(
                    f"{path}, line {line_no}: not a word followed by numbers."
                ) from None
            found += 1
    words = len(vocabulary) - 2
    return matrix, (found / words if words else 0.0)
