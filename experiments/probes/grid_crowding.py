"""Can a grid of this size keep apart the objects our scenes' questions name?

    python experiments/probes/grid_crowding.py DATA [--split test] [--grids 4 6 8 12]

DATA is a prepared scenes dataset (`vqa prepare scenes`, with its CLEVR JSON under
DATA/clevr/). For each grid size and each template that names objects, the share of
questions whose every named object has a cell of its own: a cell its box touches and
no other object's box does. Attention over a grid mixes whatever shares a cell, so a
question below that line cannot be answered by looking at the cells alone. Needs no
model: it asks whether the grid, not the training, is what holds a template back
(experiments/notes/scenes.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from referent_probe import object_cells, referents  # noqa: E402

from data_prep.scenes import FORMS, read_split  # noqa: E402


def own_cell(objects: list[dict], grid: int) -> list[bool]:
    """For each object, whether one of the cells under its box has no other object."""
    cells = [set(object_cells(obj, grid, grid)) for obj in objects]
    return [bool(mine - set().union(*cells[:i], *cells[i + 1 :])) for i, mine in enumerate(cells)]


def crowding(
    data: Path, split: str = "test", grids: tuple[int, ...] = (4, 6, 8, 12)
) -> pd.DataFrame:
    """One row per template (and "every object"), one column per grid size: % apart."""
    asked, scenes = read_split(data, split)
    named = [
        (
            FORMS[q["question_family_index"]],
            q["image_index"],
            referents(q["program"], scenes[q["image_index"]]),
        )
        for q in asked
    ]  # the programs run once, not once per grid
    table, counts = {}, {}
    for grid in grids:
        apart = {i: own_cell(s["objects"], grid) for i, s in scenes.items()}
        rows = {"every object": [ok for oks in apart.values() for ok in oks]}
        for template, image, objects in named:
            if objects:
                rows.setdefault(template, []).append(all(apart[image][i] for i in objects))
        table[f"{grid}x{grid}"] = {k: 100 * sum(v) / len(v) for k, v in rows.items()}
        counts = {k: len(v) for k, v in rows.items()}
    return pd.DataFrame({"n": counts, **table})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--grids", type=int, nargs="+", default=[4, 6, 8, 12])
    args = parser.parse_args(argv)
    table = crowding(args.data, args.split, tuple(args.grids))
    print("% of questions whose every named object has a cell of its own, per grid")
    print(table.to_string(float_format=lambda v: f"{v:.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
