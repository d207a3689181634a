"""Answer every row of a CSV of (image, question) with a trained run: `vqa ask --batch`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from vqa.errors import ImageError, VQAError
from vqa.runs.atomic import atomic_write

COLUMNS = ["image", "question", "answer", "probability", "top_k", "unknown_words", "error"]
CHUNK = 64  # questions per model call


def check_paths(source: str | Path, out: str | Path) -> tuple[Path, Path]:
    """The questions file and the answers file, checked before any model loads."""
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise VQAError(f"Questions file not found: {source}")
    if out.resolve() == source.resolve():
        raise VQAError(f"--out would overwrite the questions file {source}; choose another.")
    if not out.resolve().parent.is_dir():
        raise VQAError(f"--out: the folder of {out} does not exist.")
    return source, out


def read_questions(source: Path) -> pd.DataFrame:
    """The CSV's image and question columns (names matched case-insensitively)."""
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise VQAError(f"Cannot read {source} as CSV: {reason}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    if not {"image", "question"} <= set(table.columns):
        raise VQAError(
            f"{source} needs the columns image and question. Received: {', '.join(table.columns)}"
        )
    return table


def answer_csv(
    answerer, source: str | Path, out: str | Path, top_k: int = 3, progress: bool | None = None
) -> pd.DataFrame:
    """Answer every row of `source` (columns image, a path relative to the CSV's folder,
    and question) and write `out` atomically, one row per question. A bad row gets its
    error in its own row's error column; the others are answered. Returns the answers."""
    from tqdm import tqdm

    source, out = check_paths(source, out)
    table = read_questions(source)
    # Image paths are relative to the CSV's folder, so that the two can move together.
    images = [source.parent / p.strip() if p.strip() else None for p in table["image"]]
    questions = list(table["question"])
    rows = []
    with tqdm(
        total=len(table),
        unit="question",
        file=sys.stderr,
        disable=None if progress is None else not progress,
    ) as bar:
        for start in range(0, len(table), CHUNK):
            chunk = range(start, min(start + CHUNK, len(table)))
            given = [i for i in chunk if images[i] is not None]
            results = dict(
                zip(
                    given,
                    answerer.answer_batch(
                        [images[i] for i in given],
                        [questions[i] for i in given],
                        top_k=top_k,
                        on_error="return",
                    ),
                )
            )
            for i in chunk:
                result = results.get(i, ImageError("no image given"))
                rows.append(_row(table["image"][i], questions[i], result))
            bar.update(len(chunk))
    answers = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_write(out) as tmp:
        answers.to_csv(tmp, index=False)
    return answers


def _row(image: str, question: str, result) -> list:
    if isinstance(result, VQAError):
        return [image, question, "", "", "", "", str(result)]
    top = json.dumps([[a, round(p, 6)] for a, p in result.top_k])
    return [
        image,
        question,
        result.answer,
        round(result.probability, 6),
        top,
        " ".join(result.unknown_words),
        "",
    ]
