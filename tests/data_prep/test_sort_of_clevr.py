"""Sort-of-CLEVR generation: counts, answers re-derived from the pixels, determinism,
the CLI, argument checks and question-only balance."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.balance import question_only_table
from data_prep.sort_of_clevr import COLORS, KINDS, main, prepare
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError

N_IMAGES = 200
RELATIONAL = ("closest shape", "furthest shape", "count same shape")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> PreparedDataset:
    return prepare(tmp_path_factory.mktemp("soc") / "data", images=N_IMAGES, seed=0)


def test_counts_and_splits(dataset):
    assert dataset.name == "sort-of-clevr"
    assert dataset.meta["counts"] == {
        "train": {"questions": 180 * 20, "images": 180},
        "test": {"questions": 20 * 20, "images": 20},
    }
    assert dataset.meta["image_root"] == "images"  # relative: the directory can move
    assert dataset.answer_vocabulary_size is None
    q = dataset.questions
    assert q["question_id"].is_unique
    per_image = q.groupby(["image_id", "question_group"]).size()
    assert (per_image == 10).all() and len(per_image) == 2 * N_IMAGES
    assert not q.duplicated(["image_id", "question"]).any()
    # The test split is the last 10% of the images.
    numbers = q.groupby("split")["image_id"].agg(lambda ids: sorted(int(i[-6:]) for i in set(ids)))
    assert numbers["train"] == list(range(180)) and numbers["test"] == list(range(180, 200))
    assert (q["image_id"].str.split("/").str[0] == q["split"]).all()
    images = dataset.images
    assert len(images) == N_IMAGES
    assert (images["width"] == 75).all() and (images["height"] == 75).all()
    assert images.loc["test/000190", "path"] == "test/000190.png"
    with Image.open(dataset.image_path("test/000190")) as image:
        assert image.size == (75, 75) and image.mode == "RGB"


def test_every_kind_with_its_answers(dataset):
    q = dataset.questions
    assert set(q["question_type"]) == set(KINDS)
    for kind, (group, _, answer_type) in KINDS.items():
        rows = q[q["question_type"] == kind]
        assert (rows["question_group"] == group).all()
        assert (rows["answer_type"] == answer_type).all()
    expected = {
        "shape": {"square", "circle"},
        "closest shape": {"square", "circle"},
        "furthest shape": {"square", "circle"},
        "horizontal position": {"yes", "no"},
        "vertical position": {"yes", "no"},
        "count same shape": {"1", "2", "3", "4", "5", "6"},
    }
    for kind, answers in expected.items():
        seen = set(q.loc[q["question_type"] == kind, "answer"])
        assert seen <= answers and len(seen) >= 2, kind
    assert set(q["question_group"]) == {"relational", "non_relational"}
    assert (q["answers"].map(list) == q["answer"].map(lambda a: [a])).all()
    assert set(q.loc[q["question_group"] == "relational", "question_type"]) == set(RELATIONAL)
    assert set(COLORS) == {m.group(1) for m in q["question"].map(_asked_colour)}


def _asked_colour(question: str) -> re.Match:
    match = re.search(r"\bthe (\w+) object\b", question)
    assert match, question
    return match


def _objects_from_pixels(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Each colour's shape and centre, found in the rendered image alone."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    found = {}
    covered = np.zeros(pixels.shape[:2], dtype=bool)
    for name, rgb in COLORS.items():
        mask = (pixels == rgb).all(-1)
        ys, xs = np.nonzero(mask)
        assert xs.size, f"{path}: no {name} pixels"
        # One object of 10x10 pixels, untouched by the others: a full square has 100
        # pixels, a circle of diameter 10 about 78.
        assert xs.max() - xs.min() == 9 and ys.max() - ys.min() == 9, (path, name)
        assert xs.size == 100 or 70 <= xs.size <= 85, (path, name, xs.size)
        shape = "square" if xs.size == 100 else "circle"
        centre = np.array([xs.mean(), ys.mean()]) + 0.5  # pixel i covers [i, i + 1)
        found[name] = (shape, centre)
        covered |= mask
    assert (pixels[~covered] == 255).all(), f"{path}: stray pixels outside the six objects"
    return found


def _expected_answer(kind: str, colour: str, objects: dict) -> str:
    shape, centre = objects[colour]
    others = {
        name: np.linalg.norm(c - centre) for name, (_, c) in objects.items() if name != colour
    }
    if kind == "shape":
        return shape
    if kind == "horizontal position":
        return "yes" if centre[0] < 37.5 else "no"
    if kind == "vertical position":
        return "yes" if centre[1] < 37.5 else "no"
    if kind == "closest shape":
        return objects[min(others, key=others.get)][0]
    if kind == "furthest shape":
        return objects[max(others, key=others.get)][0]
    if kind == "count same shape":
        return str(sum(s == shape for s, _ in objects.values()))
    raise AssertionError(kind)


def test_answers_match_the_pixels(dataset):
    """Every answer of 30 images, re-derived from the PNG and the question text."""
    q = dataset.questions
    image_ids = list(dataset.images.index[:10]) + list(dataset.images.index[-20:])
    checked = 0
    for image_id in image_ids:
        objects = _objects_from_pixels(dataset.image_path(image_id))
        distances = sorted(
            np.linalg.norm(a[1] - b[1])
            for a in objects.values()
            for b in objects.values()
            if a is not b
        )
        assert distances[0] >= 10  # centres of non-overlapping 10x10 boxes
        for row in q[q["image_id"] == image_id].itertuples():
            colour = _asked_colour(row.question).group(1)
            assert row.answer == _expected_answer(row.question_type, colour, objects), row
            checked += 1
    assert checked == 30 * 20


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_bytes_anywhere(tmp_path):
    a = prepare(tmp_path / "one" / "a", images=30, seed=7).root
    b = prepare(tmp_path / "elsewhere" / "b", images=30, seed=7).root
    files_a, files_b = _files(a), _files(b)
    assert len(files_a) == 30 + 3  # images, questions.parquet, images.parquet, meta.json
    assert files_a.keys() == files_b.keys()
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different
    c = prepare(tmp_path / "c", images=30, seed=8).root
    files_c = _files(c)
    assert files_c.keys() == files_a.keys()
    assert files_c["questions.parquet"] != files_a["questions.parquet"]
    assert sum(files_c[n] != files_a[n] for n in files_a if n.endswith(".png")) == 30


def test_main_prints_report_and_balance(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--out", str(out), "--images", "20", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"prepared sort-of-clevr at {out}" in printed
    assert "train" in printed and "test" in printed
    for kind in KINDS:
        assert kind in printed
    assert PreparedDataset.load(out).meta["source"].endswith("20 images, seed 3")
    assert main(["--out", str(out), "--images", "20"]) == 1  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["--out", str(out), "--images", "10", "--overwrite"]) == 0
    assert len(PreparedDataset.load(out).images) == 10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"images": 9}, r"images.*at least 10.*Received: images=9"),
        ({"images": 0}, r"images=0"),
        ({"images": True}, r"images=True"),
        ({"images": 100.0}, r"images=100.0"),
        ({"seed": -1}, r"seed.*>= 0.*Received: seed=-1"),
        ({"seed": "1"}, r"seed='1'"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(DatasetError, match=match):
        prepare(tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_main_reports_bad_arguments(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "out"), "--images", "5"]) == 1
    assert "--images 10 or more" in capsys.readouterr().err


def test_relational_questions_cannot_be_answered_from_the_question(tmp_path):
    """A question-only model does no better than the majority answer (2,000 images)."""
    questions = prepare(tmp_path / "big", images=2000, seed=0).questions
    table = question_only_table(questions).set_index("family")
    assert set(table.index) == set(KINDS)
    for kind in RELATIONAL:
        assert table.at[kind, "gap"] <= 10, table
    assert (table["gap"] <= 10).all(), table  # the non-relational kinds too
    assert table.at["count same shape", "majority_rate"] < 40  # 3 or 4 of 6, ~31% each
