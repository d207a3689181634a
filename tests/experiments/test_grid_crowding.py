"""experiments/probes/grid_crowding.py: whether a grid keeps apart the objects a question names."""

import sys

import pytest
from conftest import ROOT

from data_prep import scenes

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from grid_crowding import crowding, own_cell  # noqa: E402


def _obj(x, y, size="small"):
    return {"pixel_coords": [x, y, 0], "size": size, "color": "red", "shape": "circle"}


def test_an_object_is_apart_when_a_cell_under_it_holds_no_other():
    near = [_obj(8, 8), _obj(24, 8)]  # boxes 1-15 and 17-31 px, 14 px across
    assert own_cell(near, 4) == [False, False]  # both in the first 32 px cell
    assert own_cell(near, 8) == [True, True]  # 16 px cells: the first cell, the second
    big_and_small = [_obj(40, 40, "large"), _obj(40, 40)]  # the small one on the large
    assert own_cell(big_and_small, 16) == [True, False]


def test_finer_grids_keep_more_apart_and_every_template_is_counted(tmp_path):
    data = scenes.prepare(tmp_path / "data", images=30).root
    table = crowding(data, "train", grids=(2, 4, 16))
    assert {"every object", "query", "same", "relate query", "closest query"} <= set(table.index)
    assert (table["n"] > 0).all()
    assert table.index[0] == "every object" and list(table.columns) == ["n", "2x2", "4x4", "16x16"]
    assert (table["2x2"] <= table["4x4"]).all() and (table["4x4"] <= table["16x16"]).all()
    every = table.loc["every object"]
    assert every["2x2"] < 50 and every["16x16"] == pytest.approx(100)
