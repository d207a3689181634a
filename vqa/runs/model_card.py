"""What a run knows, and when a question falls outside it.

RUN_DIR/model_card.json, written when training ends and completed by `vqa evaluate`:
the dataset, the image input, the answers it can give (how many, the most frequent),
its question types and, once evaluated, its accuracy per question type. `vqa ask`, the
page and the JSON API show its one-line summary, and beside an answer the warnings of
`warnings_for`: a question most of whose words the model never saw, or an answer of a
type that does not fit the question (a yes/no answer to "how many").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from vqa.runs import atomic
from vqa.runs.files import MODEL_CARD as CARD

_YES_NO_STARTS = {
    "is",
    "are",
    "was",
    "were",
    "does",
    "do",
    "did",
    "can",
    "could",
    "has",
    "have",
    "had",
    "will",
    "would",
    "should",
    "shall",
    "may",
    "might",
    "am",
}
_OPEN_STARTS = {"what", "which", "who", "whom", "whose", "where", "when", "why", "how"}
_NUMBER_STARTS = (("how", "many"), ("how", "much"), ("what", "number"))


def write_card(
    run: str | Path,
    *,
    dataset: str,
    source: str,
    image: str,
    questions: Sequence[str],
    question_types: Sequence[str],
    answers: Sequence[str],
    n_words: int,
    n_answers: int,
) -> dict:
    """The card of a run just trained on `questions` (with their types and labels)."""
    card = {
        "dataset": dataset,
        "source": source,
        "image": image,
        "question_words": n_words,
        "answers": n_answers,
        "answer_examples": [a for a, _ in Counter(answers).most_common(10)],
        "question_types": dict(Counter(question_types).most_common(12)),
        "training_questions": len(questions),
    }
    atomic.write_json(card, Path(run) / CARD)
    return card


def add_accuracy(run: str | Path, metrics: dict) -> None:
    """Record an evaluation (metrics.json's figures) on the card, if the run has one."""
    path = Path(run) / CARD
    if not path.is_file():
        return
    card = json.loads(path.read_text())
    card["accuracy"] = {
        k: metrics[k] for k in ("split", "overall", "per_question_type") if k in metrics
    }
    atomic.write_json(card, path)


def read_card(run: str | Path) -> dict | None:
    """The card, or None for a run made before cards (or without one)."""
    path = Path(run) / CARD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary(card: dict | None) -> str | None:
    """One line: what the model was trained on and how well it did."""
    if not card:
        return None
    examples = ", ".join(card["answer_examples"][:5])
    line = (
        f"trained on {card['dataset']} ({card['training_questions']} questions, "
        f"{len(card['question_types'])} question types; {card['answers']} answers such "
        f"as {examples}; images through {card['image']})"
    )
    accuracy = card.get("accuracy")
    if accuracy:
        line += f"; {accuracy['split']} accuracy {accuracy['overall']:.2f}%"
    return line


def warnings_for(words: Sequence[str], unknown: Sequence[str], answer: str) -> list[str]:
    """Why an answer may not mean much: most of the question's words are unknown to the
    model, or the answer's type does not fit the question's."""
    found = []
    if words and len(unknown) > len(words) / 2:
        found.append(
            f"the model does not know {len(unknown)} of the question's "
            f"{len(words)} words: the answer is a guess"
        )
    first = tuple(words[:2])
    yes_no = answer in ("yes", "no")
    if any(first[: len(s)] == s for s in _NUMBER_STARTS) and not answer.isdigit():
        found.append(f"the question asks for a number; {answer!r} is not one")
    elif words and words[0] in _YES_NO_STARTS and not yes_no:
        found.append(f"a yes/no question answered {answer!r}")
    elif words and words[0] in _OPEN_STARTS and yes_no:
        found.append(f"an open question ({words[0]}...) answered {answer!r}")
    return found
