"""Generated 2D scenes (data_prep.scenes): CLEVR-format files, answers from programs
and from pixels, byte-identical output per seed, balance, and the prepared dataset."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from data_prep import scenes
from vqa.errors import DatasetError

IMAGES = 200  # 180 train, 20 test
LAST_FUNCTION_TYPES = {
    "count": "count",
    "exist": "exist",
    "equal_integer": "compare numbers",
    "greater_than": "compare numbers",
    "less_than": "compare numbers",
}
SPACES = {
    "exist": {"yes/no"},
    "count": {"number"},
    "compare numbers": {"yes/no"},
    "query attribute": {"color", "shape", "size"},
    "compare attribute": {"yes/no"},
    "spatial relation": {"yes/no", "color", "shape", "size"},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes") / "clevr-format"
    scenes.generate(root, images=IMAGES, seed=0)
    return root


def _load(root: Path, kind: str, split: str) -> dict:
    return json.loads((root / kind / f"CLEVR_{split}_{kind}.json").read_text())


@pytest.fixture(scope="module")
def data(root):
    """split -> (scenes, questions)"""
    return {
        split: (
            _load(root, "scenes", split)["scenes"],
            _load(root, "questions", split)["questions"],
        )
        for split in ("train", "test")
    }


def test_clevr_layout_and_counts(root, data):
    for split, n in (("train", 180), ("test", 20)):
        scene_list, questions = data[split]
        files = sorted(p.name for p in (root / "images" / split).iterdir())
        assert files == [f"CLEVR_{split}_{i:06d}.png" for i in range(n)]
        assert [s["image_index"] for s in scene_list] == list(range(n))
        assert [s["image_filename"] for s in scene_list] == files
        assert _load(root, "questions", split)["info"]["split"] == split
        assert [q["question_index"] for q in questions] == list(range(len(questions)))
        per_image = Counter(q["image_index"] for q in questions)
        assert sorted(per_image) == list(range(n)) and max(per_image.values()) == 10
        assert len(questions) >= 9.5 * n  # about 10 questions per image
        for q in questions:
            assert q["split"] == split
            assert q["image_filename"] == files[q["image_index"]]
            assert scenes.FORMS[q["question_family_index"]]  # a template index
        for s in scene_list:
            assert 3 <= len(s["objects"]) <= 10
            assert set(s["relationships"]) == {"left", "right", "above", "below"}
            for o in s["objects"]:
                assert o["color"] in scenes.COLORS and o["shape"] in scenes.SHAPES
                assert o["size"] in scenes.SIZES and len(o["pixel_coords"]) == 3
        texts = Counter((q["image_index"], q["question"]) for q in questions)
        assert max(texts.values()) == 1  # no question twice about one image


def test_every_family_and_answer_space(data):
    questions = data["train"][1] + data["test"][1]
    spaces: dict[str, set] = {}
    for q in questions:
        spaces.setdefault(q["question_family"], set()).add(scenes.answer_space(q["answer"]))
    assert spaces == SPACES
    families = Counter(q["question_family"] for q in questions)
    assert min(families.values()) > 0.12 * len(questions)  # about a sixth each
    answers = {q["answer"] for q in questions}
    assert {
        "yes",
        "no",
        *map(str, range(11)),
        *scenes.COLORS,
        *scenes.SHAPES,
        *scenes.SIZES,
    } == answers


def test_executing_each_program_gives_its_answer(data):
    for scene_list, questions in data.values():
        for q in questions:
            program = q["program"]
            assert scenes.execute(program, scene_list[q["image_index"]]) == q["answer"]
            assert program[0]["function"] == "scene"
            assert all(max(step["inputs"], default=-1) < i for i, step in enumerate(program))
            # What the CLEVR loader makes of it: the last function, or our family.
            last = program[-1]["function"]
            if q["question_family"] != "spatial relation":
                expected = LAST_FUNCTION_TYPES.get(
                    last, "query attribute" if last.startswith("query_") else "compare attribute"
                )
                assert q["question_family"] == expected
            else:
                assert {"relate", "closest"} & {step["function"] for step in program}


def test_wording_does_not_give_the_answer_away(data):
    for q in data["train"][1]:
        words = set(q["question"].lower().rstrip("?").split())
        if q["question_family"] in ("query attribute", "spatial relation"):
            assert q["answer"] not in words  # "What color is the red circle?"
        if q["question"] == "How many objects are there?":
            assert q["answer"] in {str(n) for n in range(3, 11)}


def _objects_from_pixels(path: Path) -> list[dict]:
    """Colour, shape, size and centre of every object, read from the image alone."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    found = []
    for color, rgb in scenes.COLORS.items():
        mask = (pixels == rgb).all(-1)
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        for k, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
            width, height = xs.stop - xs.start, ys.stop - ys.start
            fill = (labels[ys, xs] == k).sum() / (width * height)
            shape = "square" if fill > 0.95 else "circle" if fill > 0.7 else "triangle"
            found.append(
                {
                    "color": color,
                    "shape": shape,
                    "size": "small" if width < 20 else "large",
                    "pixel_coords": [
                        (xs.start + xs.stop - 1) // 2,
                        (ys.start + ys.stop - 1) // 2,
                        0,
                    ],
                }
            )
    return found


def test_answers_agree_with_the_rendered_image(root, data):
    scene_list, questions = data["train"]
    checked = Counter()
    for scene in scene_list[:25]:
        seen = _objects_from_pixels(root / "images" / "train" / scene["image_filename"])
        key = lambda o: (o["pixel_coords"], o["color"], o["shape"], o["size"])  # noqa: E731
        assert sorted(map(key, seen)) == sorted(map(key, scene["objects"]))
        # Every question, answered on the objects found in the pixels.
        from_pixels = {"objects": seen, "relationships": scenes.relationships(seen)}
        for q in questions:
            if q["image_index"] == scene["image_index"]:
                assert scenes.execute(q["program"], from_pixels) == q["answer"], q["question"]
                checked[q["question_family"]] += 1
    assert set(checked) == set(scenes.FAMILIES)


def test_relations_and_closest_follow_the_centres():
    objects = [
        {"color": "red", "shape": "circle", "size": "small", "pixel_coords": [20, 30, 0]},
        {"color": "blue", "shape": "square", "size": "large", "pixel_coords": [60, 10, 0]},
        {"color": "red", "shape": "square", "size": "small", "pixel_coords": [100, 90, 0]},
    ]
    scene = {"objects": objects, "relationships": scenes.relationships(objects)}
    assert scene["relationships"]["left"] == [[], [0], [0, 1]]
    assert scene["relationships"]["above"] == [[1], [], [0, 1]]
    step = scenes.step
    program = [
        step("scene"),
        step("filter_color", [0], "blue"),
        step("unique", [1]),
        step("relate", [2], "right"),
        step("filter_color", [3], "red"),
        step("count", [4]),
    ]
    assert scenes.execute(program, scene) == "1"
    closest = [
        step("scene"),
        step("filter_shape", [0], "circle"),
        step("unique", [1]),
        step("closest", [2]),
        step("query_shape", [3]),
    ]
    assert scenes.execute(closest, scene) == "square"
    with pytest.raises(scenes.ProgramError, match="unique"):
        scenes.execute(
            [
                step("scene"),
                step("filter_color", [0], "red"),
                step("unique", [1]),
                step("query_shape", [2]),
            ],
            scene,
        )
    tie = [dict(o) for o in objects]
    tie[1]["pixel_coords"], tie[2]["pixel_coords"] = [30, 30, 0], [10, 30, 0]
    with pytest.raises(scenes.ProgramError, match="equally close"):
        scenes.execute(closest, {"objects": tie, "relationships": {}})


def test_same_seed_same_bytes_anywhere(tmp_path):
    def tree(root):
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    scenes.generate(tmp_path / "a", images=20, seed=7)
    scenes.generate(tmp_path / "somewhere" / "else", images=20, seed=7)
    scenes.generate(tmp_path / "b", images=20, seed=8)
    a, a2, b = (tree(tmp_path / p) for p in ("a", "somewhere/else", "b"))
    assert len(a) == 20 + 4 and a == a2
    assert a.keys() == b.keys()
    assert a["questions/CLEVR_train_questions.json"] != b["questions/CLEVR_train_questions.json"]
    assert sum(a[k] != b[k] for k in a if k.endswith(".png")) >= 18
    # and the prepared dataset made from it, parquet and meta.json included
    scenes.prepare(tmp_path / "p1", images=20, seed=7)
    scenes.prepare(tmp_path / "deeper" / "p2", images=20, seed=7)
    p1, p2 = tree(tmp_path / "p1"), tree(tmp_path / "deeper" / "p2")
    assert "questions.parquet" in p1 and p1 == p2


def test_balance_question_only_no_better_than_majority():
    # 5,000 images, split by image in halves rather than 90/10: a test split of
    # 2,500 images makes the smallest rows (spatial relation / size, ...) big enough
    # that noise stays far below the 10-point bar; generated without rendering.
    questions = [q for _, qs in scenes.records(5000, seed=3) for q in qs]
    for q in questions:
        q["split"] = "test" if q["image_index"] % 2 else "train"
    table = scenes.balance_table(questions)
    expected = {f"{family} / {space}" for family, spaces in SPACES.items() for space in spaces}
    assert set(table["family"]) == expected
    assert table["n_test"].min() > 600
    assert (table["gap"] <= 10).all(), table.to_string()


def test_balance_table_of_a_generated_directory(root):
    table = scenes.balance_table(root)
    assert len(table) == sum(len(s) for s in SPACES.values())
    assert (table["n_test"] > 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"images": 5}, "--images must be an integer of at least 10"),
        ({"images": 100, "seed": -1}, "--seed must be a non-negative integer"),
    ],
)
def test_bad_arguments_say_what_to_do(tmp_path, kwargs, match):
    with pytest.raises(DatasetError, match=match):
        scenes.generate(tmp_path / "x", **kwargs)
    with pytest.raises(DatasetError, match=match):
        scenes.prepare(tmp_path / "y", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_prepare_end_to_end(tmp_path):
    ds = scenes.prepare(tmp_path / "scenes", images=60, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenes"]  # temp dir removed
    assert ds.name == "scenes" and "seed 1" in ds.meta["source"]
    q = ds.questions
    assert ds.meta["counts"]["train"]["images"] == 54 and ds.meta["counts"]["test"]["images"] == 6
    assert set(q["question_type"]) == set(scenes.FAMILIES)
    assert set(q["answer_type"]) == {"yes/no", "number", "other"}
    assert (q.loc[q["answer"].isin(["yes", "no"]), "answer_type"] == "yes/no").all()
    assert (q["answers"].map(list) == q["answer"].map(lambda a: [a])).all()
    # The images were copied in, and are the generated ones.
    assert ds.meta["image_root"] == "images"
    assert all(ds.image_path(i).is_file() for i in ds.images.index)
    assert all(ds.images["width"] == 128) and all(ds.images["height"] == 128)
    pixels, _ = ds.load_images(list(ds.images.index[:2]), 128)
    assert pixels.shape == (2, 128, 128, 3)
    # The CLEVR JSON is kept with it, programs and all.
    kept = json.loads((ds.root / "clevr" / "questions" / "CLEVR_test_questions.json").read_text())
    assert len(kept["questions"]) == ds.meta["counts"]["test"]["questions"]
    assert (ds.root / "clevr" / "scenes" / "CLEVR_train_scenes.json").is_file()
    # An existing output needs --overwrite, and is refused before generating anything.
    with pytest.raises(DatasetError, match="already exists"):
        scenes.prepare(tmp_path / "scenes", images=60, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenes"]
    again = scenes.prepare(tmp_path / "scenes", images=60, seed=2, overwrite=True)
    assert "seed 2" in again.meta["source"]


def test_module_entry_point(tmp_path, capsys):
    assert scenes.main(["--out", str(tmp_path / "s"), "--images", "40"]) == 0
    out = capsys.readouterr().out
    assert "prepared scenes" in out and "query attribute / color" in out
    assert scenes.main(["--out", str(tmp_path / "s"), "--images", "40"]) == 1
    assert "already exists" in capsys.readouterr().err
