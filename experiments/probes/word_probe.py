"""Does a trained run read a word of its questions, or has it learnt to ignore it?

    python experiments/probes/word_probe.py RUN DATA \
        --template "What is the shape of the {} object?" \
        --words red,green,blue,orange,yellow,gray [--split test] [--images 200] [--json]

The template's `{}` is filled with each word in turn. Printed:

- **question-vector share**: how much of the question encoder's output changes with the
  word (the mean distance of each word's vector from the words' mean, over the mean
  vector length), for the trained run and for the same model freshly initialised. A
  share near 0 means the encoder hands every word the same vector: nothing downstream
  can tell them apart.
- **same answer for every word**: over `--images` images of the split, the fraction of
  images on which the run gives one answer whichever word the question names.
- **accuracy**: exact-match accuracy on the split's own questions made from the template.

On Sort-of-CLEVR every image holds one object of each colour, so the colour word tells
nothing about the image as a whole; this is how we found that runs on the plateau had
learnt to ignore it (experiments/notes/sort-of-clevr.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _question_encoder(model):
    """The question encoder inside `model` (also inside a fine-tuned run's nested head)."""
    for layer in model.layers:
        if layer.name == "question_encoder":
            return layer
        if hasattr(layer, "layers"):
            found = _question_encoder(layer)
            if found is not None:
                return found
    return None


def vector_share(model, words_vocab, questions: list[str], max_length: int) -> float:
    """Mean distance of each question's encoding from their mean, over the mean length."""
    encoder = _question_encoder(model)
    tokens = words_vocab.encode_questions(questions, max_length)
    vectors = encoder.predict(tokens, verbose=0)
    if isinstance(vectors, list):  # attention_word_embeddings: [states, embeddings]
        vectors = vectors[0]
    vectors = np.asarray(vectors, dtype="float64")
    if vectors.ndim == 3:  # attention_words: every word's state; the last is the question's
        vectors = vectors[:, -1]
    spread = np.linalg.norm(vectors - vectors.mean(0), axis=1).mean()
    return float(spread / max(np.linalg.norm(vectors, axis=1).mean(), 1e-12))


def probe(
    run: str | Path,
    dataset,
    template: str,
    words: list[str],
    split: str = "test",
    n_images: int = 200,
) -> dict:
    """The three figures above, as a dict."""
    import keras

    from vqa import Answerer
    from vqa.features.backbones import model_grid_shape
    from vqa.models import build_model

    if template.count("{}") != 1 or len(words) < 2:
        raise ValueError(
            "word_probe needs a template with one {} and at least two words. "
            f"Received: template={template!r}, words={words!r}"
        )
    answerer = Answerer.load(run)
    unknown = [w for w in words if w not in answerer.words]
    if unknown:
        raise ValueError(
            f"{run} has never seen the words {unknown} (they would all read as the unknown token)."
        )
    questions = [template.format(w) for w in words]
    max_length = answerer.config.model.max_question_length
    keras.utils.set_random_seed(answerer.config.train.seed)
    fresh = build_model(
        answerer.config.model,
        len(answerer.words),
        len(answerer.answers),
        grid_shape=model_grid_shape(answerer.config.model),
    )

    asked = dataset.split(split)
    image_ids = sorted(asked["image_id"].unique())[:n_images]
    grid = pd.DataFrame(
        {
            "question_id": np.arange(len(image_ids) * len(words)),
            "image_id": np.repeat(image_ids, len(words)),
            "question": questions * len(image_ids),
        }
    )
    answers = np.asarray(list(answerer.predict_dataset(dataset, grid).values())).reshape(
        len(image_ids), len(words)
    )  # [image, word]
    same = (answers == answers[:, :1]).all(1)

    own = asked[asked["question"].isin(questions)]
    predicted = answerer.predict_dataset(dataset, own) if len(own) else {}
    correct = [predicted[q] == a for q, a in zip(own["question_id"], own["answer"])]
    return {
        "run": str(run),
        "template": template,
        "words": words,
        "split": split,
        "question_vector_share": round(
            vector_share(answerer.model, answerer.words, questions, max_length), 4
        ),
        "question_vector_share_at_init": round(
            vector_share(fresh, answerer.words, questions, max_length), 4
        ),
        "images": len(image_ids),
        "same_answer_for_every_word": round(float(same.mean()), 4),
        "questions_in_split": len(own),
        "accuracy": round(100 * float(np.mean(correct)), 2) if correct else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--template", required=True, help='a question with one "{}"')
    parser.add_argument("--words", required=True, help="comma-separated words for the {}")
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from vqa.data.dataset import PreparedDataset

    result = probe(
        args.run,
        PreparedDataset.load(args.data),
        args.template,
        [w.strip() for w in args.words.split(",") if w.strip()],
        args.split,
        args.images,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['template']}  ({', '.join(result['words'])})")
    print(
        f"  question-vector share: {result['question_vector_share']:.4f} trained, "
        f"{result['question_vector_share_at_init']:.4f} at initialisation"
    )
    print(
        f"  same answer for every word: {100 * result['same_answer_for_every_word']:.1f}% "
        f"of {result['images']} {result['split']} images"
    )
    if result["accuracy"] is not None:
        print(
            f"  accuracy on the {result['questions_in_split']} such questions of "
            f"{result['split']}: {result['accuracy']:.2f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
