"""Does a two-referent run find the anchor of "left of the blue square"? And could it?

    python experiments/probes/anchor_probe.py RUN DATA [--questions 192]

For a run whose referent fusion has `composed_find` and 2 referents, on its own
validation images (never the test split). Printed, for "relate query", "closest query"
and "same" questions: the second referent's weight on its object (the anchor; the second
object of "same") and the share of questions whose map peaks on it, with the map made
four ways:
- own: as the run makes it;
- anchor-query FiLM: the same words over cells modulated by "What color is the
  <anchor>?" in place of the question (is it the question's modulation that hides it?);
- no FiLM: over the blocks without their modulation (gamma = beta = 0);
- anchor words only: the question's own cells, and the second referent's description
  cut to the anchor's words (is it the filler words, "of the", that blur it?).
Then, with `relate_pick`, the relation a(q), b(q) the run gives each relation word in
one question, and how far apart the question's last states are for "left of" and
"right of" (can the relation tell them apart at all?). With `find_sees_question: false`
the find does not read the modulated cells, and the first three maps are the same.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from keras import ops  # noqa: E402
from referent_probe import object_cells, referents  # noqa: E402

from data_prep.scenes import FORMS, read_split  # noqa: E402
from data_prep.scenes.programs import _words  # noqa: E402
from vqa.answering import Answerer  # noqa: E402
from vqa.models.builder import model_inputs  # noqa: E402

WAYS = ("own", "anchor-query FiLM", "no FiLM", "anchor words only")
RELATIONS = ("left of", "right of", "above", "below")


def anchor_words(question: dict) -> str:
    """The words of the first description a program filters on (the anchor's)."""
    d = {}
    for step in question["program"][1:]:
        if not step["function"].startswith("filter_"):
            break
        d[step["function"][len("filter_") :]] = step["value_inputs"][0]
    return _words((d.get("size"), d.get("color"), d.get("shape")))


class Probe:
    def __init__(self, run: Path, data: Path):
        self.answerer, self.data = Answerer.load(run), data
        self.model = self.answerer.model
        self.fusion = self.model.get_layer("referent")
        self.inputs_of = keras.Model(self.model.inputs, self.fusion.input)

    def fusion_inputs(self, questions: list[dict], texts: list[str]) -> list:
        a = self.answerer
        images = [self.data / "images" / "train" / q["image_filename"] for q in questions]
        pixels = np.stack([a.preprocessing.pixels(image) for image in images])
        tokens = np.stack([a._encode(text).ids for text in texts])
        inputs = model_inputs(self.model, a._grids(pixels), tokens)
        return [ops.convert_to_tensor(x) for x in self.inputs_of(inputs)]

    def cells(self, question, grid, film: bool):
        """The fusion's cells over `grid`, modulated by `question` or (film false) not."""
        f = self.fusion
        blocks = None if film else zip(f.convs, f.norms, [None] * len(f.convs))
        return f._cells(question, grid, False, blocks)[0], f.looked_grid(grid.shape)

    def second_map(self, inputs, cells, only=None):
        """The second referent's weights [b, n]; `only` [b, L]: its words kept."""
        f = self.fusion
        keys = f._find_keys(inputs, cells, False)
        if only is None:
            return np.asarray(ops.softmax(f._described(inputs, keys)[1], axis=-1))
        q = inputs[0].shape[-1]
        states, embeddings = inputs[2][..., :q], inputs[2][..., q:]
        fit = ops.einsum("blu,bnu->bln", f.word_match(embeddings), keys)
        fit = fit / float(f.units) ** 0.5 + f.word_shift(embeddings)
        slots = np.asarray(f.word_slots(states, embeddings, inputs[3]))[..., 1] * only
        return np.asarray(ops.softmax(ops.einsum("bl,bln->bn", slots, ops.log_sigmoid(fit)), -1))


def second_object(question: dict, template: str) -> str:
    """The words that describe the anchor, or the second object of "same"."""
    if template == "same":  # "... as the <description>?"
        return question["question"].rstrip("?").split(" as the ")[-1]
    return anchor_words(question)


def probe(run: Path, data: Path, questions: int = 192) -> list[dict]:
    p = Probe(run, data)
    valid = set(json.loads((run / "validation_images.json").read_text()))
    asked, scenes = read_split(data, "train")
    asked = [q for q in asked if f"train/{q['image_filename']}" in valid]
    rows = []
    for template in ("relate query", "closest query", "same"):
        chosen = [q for q in asked if FORMS[q["question_family_index"]] == template]
        chosen = chosen[:questions]
        weight, peak = {w: [] for w in WAYS}, {w: [] for w in WAYS}
        for start in range(0, len(chosen), 64):
            some = chosen[start : start + 64]
            own = p.fusion_inputs(some, [q["question"] for q in some])
            query = p.fusion_inputs(
                some, [f"What color is the {second_object(q, template)}?" for q in some]
            )  # the second object's own question
            ids = np.asarray(own[3])
            length = (ids != 0).sum(1)
            only = np.zeros(ids.shape, "float32")
            for j, q in enumerate(some):
                only[j, length[j] - len(second_object(q, template).split()) : length[j]] = 1.0
            maps = {}
            for way in WAYS:
                question = query[0] if way == "anchor-query FiLM" else own[0]
                cells, shape = p.cells(question, own[1], film=way != "no FiLM")
                maps[way] = p.second_map(own, cells, only if way == "anchor words only" else None)
            for j, q in enumerate(some):
                scene = scenes[q["image_index"]]
                found = referents(q["program"], scene)
                target = found[1] if template == "same" else found[0]
                cells_on = object_cells(scene["objects"][target], *shape)
                for way in WAYS:
                    weight[way].append(maps[way][j, cells_on].sum())
                    peak[way].append(int(np.argmax(maps[way][j]) in cells_on))
        for way in WAYS:
            rows.append(
                dict(
                    template=template,
                    n=len(chosen),
                    map=way,
                    weight=round(float(np.mean(weight[way])), 2),
                    peaks_on_it=round(100 * float(np.mean(peak[way])), 1),
                )
            )
    return rows


def relations(run: Path) -> list[str]:
    p = Probe(run, Path("."))
    f = p.fusion
    texts = [f"What color is the circle {r} the blue square?" for r in RELATIONS]
    texts.append("What color is the object closest to the blue square?")
    a = p.answerer
    tokens = np.stack([a._encode(t).ids for t in texts])
    grids = a._grids(np.zeros((len(texts), a.preprocessing.size, a.preprocessing.size, 3)))
    inputs = [np.asarray(x) for x in p.inputs_of(model_inputs(p.model, grids, tokens))]
    q = inputs[0]
    lines = [
        f"last states: 'left of' to 'right of' {np.linalg.norm(q[0] - q[1]):.3f}, "
        f"to 'closest to' {np.linalg.norm(q[0] - q[4]):.3f}; a state's norm "
        f"{np.linalg.norm(q[0]):.3f}"
    ]
    if not getattr(f, "relate_pick", False):
        return lines
    asked = q
    if f.relation_words:
        present = (inputs[3] != 0).astype("float32")[..., None]
        bag = (inputs[2][..., q.shape[-1] :] * present).sum(1) / np.maximum(present.sum(1), 1)
        asked = np.concatenate([q, bag], -1)
    relation = np.asarray(f.relation(asked))
    for text, (ax, ay, ad, b) in zip(texts, relation):
        lines.append(f"{text:55s} a: dx {ax:6.2f}, dy {ay:6.2f}, d^2 {ad:6.2f}; b {b:6.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--questions", type=int, default=192, help="per template")
    args = parser.parse_args(argv)
    print("weight: the second referent's map summed over its object's cells (mean); ")
    print("peaks_on_it: % of questions whose map is highest on one of those cells")
    for row in probe(args.run, args.data, args.questions):
        print(
            f"{row['template']:14s} n={row['n']:4d} {row['map']:18s} "
            f"weight {row['weight']:.2f}  peaks on it {row['peaks_on_it']:5.1f}%"
        )
    print("\n".join(relations(args.run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
