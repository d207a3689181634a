"""CLEVR v1.0-format preparation on files generated here."""

import json

import pytest
from PIL import Image

from data_prep import clevr
from data_prep.common import SKIPPED
from vqa.cli import main as vqa_main
from vqa.errors import DatasetError

# (last steps of a program, answer, expected question type)
PROGRAMS = [
    (["filter_color", "count"], 3, "count"),
    (["filter_shape", "exist"], "yes", "exist"),
    (["filter_size", "count", "filter_color", "count", "equal_integer"], "no", "compare numbers"),
    (["filter_color", "count", "filter_shape", "count", "greater_than"], "yes", "compare numbers"),
    (["filter_color", "count", "filter_shape", "count", "less_than"], "no", "compare numbers"),
    (["filter_color", "unique", "query_shape"], "cube", "query attribute"),
    (["filter_shape", "unique", "relate", "unique", "query_material"], "rubber", "query attribute"),
    (
        [
            "filter_color",
            "unique",
            "query_color",
            "filter_size",
            "unique",
            "query_color",
            "equal_color",
        ],
        "yes",
        "compare attribute",
    ),
    (["unique", "query_size", "unique", "query_size", "equal_size"], "no", "compare attribute"),
]


def _program(functions, key="function"):
    steps = [{"inputs": [], key: "scene", "value_inputs": []}]
    steps += [
        {"inputs": [i], key: f, "value_inputs": ["x"] if f.startswith("filter") else []}
        for i, f in enumerate(functions)
    ]
    return steps


def make_clevr_root(root, images_per_split=3):
    """CLEVR_v1.0's layout: questions/CLEVR_{split}_questions.json, images/{split}/."""
    (root / "questions").mkdir(parents=True)
    for split in ("train", "val", "test"):
        (root / "images" / split).mkdir(parents=True)
        questions = []
        for i in range(images_per_split):
            name = f"CLEVR_{split}_{i:06d}.png"
            Image.new("RGB", (48, 32), (i * 40, 100, 150)).save(root / "images" / split / name)
            for functions, answer, _ in PROGRAMS:
                q = {
                    "split": split,
                    "image_index": i,
                    "image_filename": name,
                    "question_index": len(questions),
                    "question": f"Q {functions[-1]} {i}?",
                    "question_family_index": 7,
                }
                if split != "test":  # CLEVR's test questions have neither
                    q["answer"] = answer
                    # early CLEVR releases call the function "type"
                    q["program"] = _program(functions, "type" if i == 1 else "function")
                questions.append(q)
        (root / "questions" / f"CLEVR_{split}_questions.json").write_text(
            json.dumps({"info": {"split": split, "version": "1.0"}, "questions": questions})
        )
    return root


@pytest.fixture(scope="module")
def clevr_root(tmp_path_factory):
    return make_clevr_root(tmp_path_factory.mktemp("clevr") / "CLEVR_v1.0")


def test_question_types_from_the_program(clevr_root, tmp_path):
    ds = clevr.prepare(clevr_root, tmp_path / "out")
    assert ds.splits == ["test", "train", "val"]
    assert ds.meta["counts"]["train"] == {"questions": 27, "images": 3}
    train = ds.split("train")
    expected = [t for _ in range(3) for _, _, t in PROGRAMS]
    assert list(train["question_type"]) == expected
    assert list(train["answers"].map(list))[:2] == [["3"], ["yes"]]
    assert dict(zip(train["answer"], train["answer_type"])) == {
        "3": "number",
        "yes": "yes/no",
        "no": "yes/no",
        "cube": "other",
        "rubber": "other",
    }
    test = ds.split("test")
    assert (test["answer"] == "").all() and (test["question_type"] == "").all()
    assert ds.image_path(train["image_id"][0]).is_file()
    assert ds.image_root == (clevr_root / "images").resolve()  # not copied by default


@pytest.mark.parametrize(
    "last, expected",
    [
        ("count", "count"),
        ("exist", "exist"),
        ("equal_integer", "compare numbers"),
        ("less_than", "compare numbers"),
        ("greater_than", "compare numbers"),
        ("query_color", "query attribute"),
        ("query_size", "query attribute"),
        ("equal_shape", "compare attribute"),
        ("equal_material", "compare attribute"),
        ("relate", None),
        ("filter_color", None),
    ],
)
def test_question_type_rule(last, expected):
    assert clevr.question_type(last) == expected


def test_copy_images_and_cli(clevr_root, tmp_path, capsys):
    out = tmp_path / "copied"
    assert (
        vqa_main(
            ["prepare", "clevr", "--root", str(clevr_root), "--out", str(out), "--copy-images"]
        )
        == 0
    )
    assert "answer vocabulary: 5 answers (all of the train split)" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["image_root"] == "images"
    assert (out / "images" / "val" / "CLEVR_val_000002.png").is_file()


def _edit_questions(root, split, edit):
    path = root / "questions" / f"CLEVR_{split}_questions.json"
    data = json.loads(path.read_text())
    edit(data["questions"])
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda qs: qs[4].update(image_filename="../../etc/passwd"),
            "question_index=4: image path",
        ),
        (lambda qs: qs[4].update(image_filename="/etc/passwd"), "question_index=4: image path"),
        (lambda qs: qs[4].update(question=""), "question_index=4: empty question"),
        (lambda qs: qs[4].update(question_index=3), "question_index=3: duplicate"),
        (lambda qs: qs[4].update(image_filename="CLEVR_train_000099.png"), "image file not found"),
        (
            lambda qs: qs[4]["program"][-1].update(function="relate"),
            "question_index=4: unknown program",
        ),
    ],
)
def test_bad_records(tmp_path, damage, message):
    root = make_clevr_root(tmp_path / "root")
    path = _edit_questions(root, "train", damage)
    with pytest.raises(DatasetError, match=f"{path.name}.*{message}"):
        clevr.prepare(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    ds = clevr.prepare(root, tmp_path / "out", skip_bad=True)
    assert ds.meta["counts"]["train"]["questions"] == 26
    assert message.split(":")[-1].strip() in (ds.root / SKIPPED).read_text()


def test_unreadable_image_and_malformed_json(tmp_path):
    root = make_clevr_root(tmp_path / "root")
    (root / "images" / "val" / "CLEVR_val_000001.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="CLEVR_val_000001.png.*unreadable image"):
        clevr.prepare(root, tmp_path / "out")
    ds = clevr.prepare(root, tmp_path / "out", skip_bad=True)
    assert ds.meta["counts"]["val"] == {"questions": 18, "images": 2}
    bad_json = root / "questions" / "CLEVR_train_questions.json"
    bad_json.write_text(bad_json.read_text()[:100])
    with pytest.raises(DatasetError, match="CLEVR_train_questions.json is not valid JSON"):
        clevr.prepare(root, tmp_path / "out2", skip_bad=True)


def test_missing_layout_is_explained(tmp_path):
    with pytest.raises(DatasetError, match="CLEVR_v1.0.zip"):
        clevr.prepare(tmp_path, tmp_path / "out")


def test_a_split_emptied_by_skip_bad_is_reported(tmp_path):
    root = make_clevr_root(tmp_path / "root")
    _edit_questions(root, "val", lambda qs: [q.update(question="") for q in qs])
    ds = clevr.prepare(root, tmp_path / "out", skip_bad=True)
    assert ds.splits == ["test", "train"]
    assert "every question of the split was left out" in (ds.root / SKIPPED).read_text()
