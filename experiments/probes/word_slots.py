"""Whose description each word of a question is in, for a run whose referent fusion has
`composed_find` (vqa/models/fusions/referent.py).

    python experiments/probes/word_slots.py RUN ["question" ...]

Prints, word by word, the share of the word in each referent's description and in
none (s_wj, as the fusion weighs it), and with `descriptive_words` how much the word
describes at all (d_w, from its embedding). Without questions, one of each scenes
template that names objects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

QUESTIONS = (
    "What color is the red circle?",
    "Is there a large red circle?",
    "Does the red circle have the same size as the square?",
    "What size is the object closest to the large square?",
    "What color is the circle left of the blue square?",
    "Are there more red objects than squares?",
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("questions", nargs="*", default=QUESTIONS)
    args = parser.parse_args(argv)

    from keras import ops

    from vqa import Answerer

    answerer = Answerer.load(args.run)
    encoder = answerer.model.get_layer("question_encoder")
    fusion = answerer.model.get_layer("referent")
    if not fusion.composed_find:
        raise SystemExit(f"{args.run}: its referent fusion has no composed_find")
    names = [f"referent {j + 1}" for j in range(fusion.referents)] + ["none"]
    for question in args.questions:
        ids = np.asarray(answerer._encode(question).ids)[None]
        states, embeddings = encoder(ids)
        slots = ops.convert_to_numpy(fusion.word_slots(states, embeddings, ids))[0]
        slots = np.concatenate([slots, 1.0 - slots.sum(-1, keepdims=True)], axis=-1)
        describes = (
            ops.convert_to_numpy(ops.sigmoid(fusion.word_describes(embeddings)))[0, :, 0]
            if fusion.descriptive_words
            else None
        )
        print(question)
        print(f"  {'word':>10}  " + "  ".join(f"{n:>10}" for n in names) + "  describes")
        for i, word in enumerate(question.lower().rstrip("?").split()):
            shares = "  ".join(f"{s:10.2f}" for s in slots[i])
            said = f"{describes[i]:9.2f}" if describes is not None else "        -"
            print(f"  {word:>10}  {shares}  {said}")


if __name__ == "__main__":
    main()
