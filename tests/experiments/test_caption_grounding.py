"""experiments/probes/caption_grounding.py: how flat a caption run's attention is, and
whether the objects its captions name are in the scene."""

import json
import sys

import numpy as np
import pytest
from conftest import ROOT

from data_prep import scenes
from vqa.captioning import CaptionResult, CaptionWord
from vqa.cli import main as vqa

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from caption_grounding import _mentions, _truth, grounding, main  # noqa: E402


@pytest.fixture(scope="module")
def scenes_data(tmp_path_factory):
    return scenes.prepare(tmp_path_factory.mktemp("scenes") / "data", images=30).root


def _result(caption, maps):
    words = [CaptionWord(w, 0.5, m) for w, m in zip(caption.split(), maps)]
    return CaptionResult(caption, words, "greedy", -1.0)


def test_mentions_read_sizes_colours_and_shapes():
    assert _mentions("a large red circle left of two blue squares and a gray thing") == [
        ("large", "red", "circle"),
        (None, "blue", "square"),
    ]


def test_named_objects_are_checked_against_the_scene(scenes_data):
    truth = _truth(scenes_data)
    objects = next(o for i, o in truth.items() if i.startswith("test/"))
    present = objects[0]
    absent = next(
        (c, s)
        for c in scenes.COLORS
        for s in scenes.SHAPES
        if all((o["color"], o["shape"]) != (c, s) for o in objects)
    )
    other_size = "small" if present["size"] == "large" else "large"
    flat, sharp = np.full((2, 2), 0.25), np.array([[1.0, 0], [0, 0]])
    right = f"a {present['size']} {present['color']} {present['shape']}"
    wrong = f"a {other_size} {present['color']} {present['shape']} and a {absent[0]} {absent[1]}"
    images = [i for i in truth if i.startswith("train/")][:2]
    truth[images[0]] = truth[images[1]] = objects
    measured = grounding(
        {images[0]: _result(right, [flat] * 4), images[1]: _result(wrong, [sharp] * 8)}, truth
    )
    assert measured["attention_entropy"] == round(4 / 12, 3)  # 4 flat words of 12
    assert measured["colour_shape_right"] == round(100 * 2 / 3, 2)
    assert measured["size_colour_shape_right"] == 50  # the wrong size is not right
    assert measured["captions_all_right"] == 50


def test_a_caption_run_is_measured_on_its_held_out_images(scenes_data, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        "image: {image_encoder: small_cnn, image_size: 32, cnn_filters: [8],"
        " image_dim: 16}\nattention: {attention_dim: 16}\ncaption: {decoder:"
        " attention, decoder_dim: 16, word_dim: 8}\ntrain: {epochs: 1}\n"
    )
    assert (
        vqa(["train", str(scenes_data), "--config", str(config), "--out", str(tmp_path / "run")])
        == 0
    )
    capsys.readouterr()
    assert main([str(scenes_data), str(tmp_path / "run"), "--images", "3"]) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert measured["images"] == 3 and 0 < measured["attention_entropy"] <= 1
