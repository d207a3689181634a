"""experiments/probes/referent_probe.py: each hop's attention on the objects a question names."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT

from data_prep import scenes
from vqa import Answerer

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from referent_probe import TEMPLATES, object_cells, probe, referents  # noqa: E402


@pytest.fixture(scope="module")
def scenes_data(tmp_path_factory):
    return scenes.prepare(tmp_path_factory.mktemp("scenes") / "data", images=20).root


def _obj(x, y, size="small", color="red", shape="circle"):
    return {"pixel_coords": [x, y, 0], "size": size, "color": color, "shape": shape}


def test_object_cells_are_those_its_box_touches():
    assert object_cells(_obj(10, 10), 4, 4) == [0]  # box 3-17 px, cells of 32 px
    assert object_cells(_obj(32, 70, "large"), 4, 4) == [4, 5, 8, 9]  # x 19-45, y 57-83
    assert object_cells(_obj(120, 120, "large"), 4, 4) == [15]  # clipped at the border


def test_referents_are_the_objects_in_the_order_the_program_finds_them():
    scene = {"objects": [_obj(10, 10), _obj(60, 60, color="blue"), _obj(110, 120, shape="square")]}
    scene["relationships"] = scenes.relationships(scene["objects"])
    same = [
        {"function": "scene", "inputs": [], "value_inputs": []},
        {"function": "filter_shape", "inputs": [0], "value_inputs": ["square"]},
        {"function": "unique", "inputs": [1], "value_inputs": []},
        {"function": "query_color", "inputs": [2], "value_inputs": []},
        {"function": "scene", "inputs": [], "value_inputs": []},
        {"function": "filter_color", "inputs": [4], "value_inputs": ["blue"]},
        {"function": "unique", "inputs": [5], "value_inputs": []},
        {"function": "query_color", "inputs": [6], "value_inputs": []},
        {"function": "equal_color", "inputs": [3, 7], "value_inputs": []},
    ]
    assert referents(same, scene) == [2, 1]
    closest = [
        {"function": "scene", "inputs": [], "value_inputs": []},
        {"function": "filter_color", "inputs": [0], "value_inputs": ["blue"]},
        {"function": "unique", "inputs": [1], "value_inputs": []},
        {"function": "closest", "inputs": [2], "value_inputs": []},
        {"function": "query_shape", "inputs": [3], "value_inputs": []},
    ]
    assert referents(closest, scene) == [1, 0]  # (10, 10) is nearer (60, 60) than (110, 120)


def test_a_hop_looking_at_the_first_object_is_counted_on_it(scenes_data):
    """A stand-in answerer whose first hop puts all its weight on the cell under the
    centre of the first object the program picks (found here by running the program,
    independently of the probe), and whose second hop looks everywhere."""
    questions = json.loads((scenes_data / "clevr/questions/CLEVR_test_questions.json").read_text())[
        "questions"
    ]
    scene_of = {
        s["image_index"]: s
        for s in json.loads((scenes_data / "clevr/scenes/CLEVR_test_scenes.json").read_text())[
            "scenes"
        ]
    }
    by_text = {(q["image_filename"], q["question"]): q for q in questions}

    def answer_batch(images, texts):
        results = []
        for image, text in zip(images, texts):
            q = by_text[(Path(image).name, text)]
            scene = scene_of[q["image_index"]]
            outputs = scenes.run_program(q["program"], scene)
            first = next(o for s, o in zip(q["program"], outputs) if s["function"] == "unique")
            x, y = scene["objects"][first]["pixel_coords"][:2]
            hops = np.full((2, 4, 4), 1 / 16, dtype="float32")
            hops[0] = 0
            hops[0, y // 32, x // 32] = 1
            results.append(SimpleNamespace(hop_attention=hops, answer=q["answer"]))
        return results

    table = probe(SimpleNamespace(answer_batch=answer_batch), scenes_data, questions=50)
    assert set(table["template"]) == set(TEMPLATES)
    first = table[(table["hop"] == 0) & (table["object"] == 0)]
    assert list(first["weight"]) == pytest.approx([1.0] * len(TEMPLATES))
    assert (first["over_half"] == 100).all()
    assert (table["accuracy"] == 100).all()
    everywhere = table[table["hop"] == 1]
    assert (everywhere["weight"] < 0.5).all() and (everywhere["over_half"] == 0).all()
    # Only the questions on the images given (the run's validation images, for one).
    image = questions[0]["image_filename"]
    named = [q for q in questions if scenes.FORMS[q["question_family_index"]] in TEMPLATES]
    on_it = sum(q["image_filename"] == image for q in named)
    some = probe(SimpleNamespace(answer_batch=answer_batch), scenes_data, images={f"test/{image}"})
    assert some.groupby("template")["n"].first().sum() == on_it


def test_a_real_run_is_probed_and_one_without_attention_refused(
    scenes_data, tiny_run, tiny_attention_run
):
    table = probe(Answerer.load(tiny_attention_run), scenes_data, questions=3)
    assert set(table["hop"]) == {0, 1}
    assert ((table["weight"] >= 0) & (table["weight"] <= 1 + 1e-5)).all()
    with pytest.raises(ValueError, match="no attention"):
        probe(Answerer.load(tiny_run[0]), scenes_data, questions=3)
