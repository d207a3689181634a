"""`vqa prepare folder`: your own images and questions, in the imagefolder layout,
generated here (nested folders with spaces, CSV with quoted commas, JSONL with ten
answers a question, PNG and JPEG), then trained on and scored like any source."""

import csv
import json
import random
import re

import official_vqa_eval as official
import pandas as pd
import pytest
from conftest import TINY_CONFIG, draw_shape

from data_prep import folder, question_types
from data_prep.common import SKIPPED
from vqa.cli import main as vqa_main
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError

COLORS = ("red", "blue")
SHAPES = ("circle", "rectangle")


def _write_csv(path, rows, columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def make_folder(root, n_train=16, n_val=6, n_test=4, seed=0):
    """train/ (CSV, PNG in nested folders with spaces; one answer, or a JSON list),
    validation/ (JSONL, JPEG, ten answers each), test/ (CSV, no answers)."""
    rng = random.Random(seed)
    train = []
    for i in range(n_train):
        color, shape = rng.choice(COLORS), rng.choice(SHAPES)
        name = f"photos/{color} things/shape {i}.png"
        (root / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        draw_shape(color, shape).save(root / "train" / name)
        train.append(
            {
                "file_name": name,
                "question": "What color is the shape, red or blue?",
                "answer": color,
                "answers": "",
            }
        )
        train.append(
            {
                "file_name": name,
                "question": "what shape is in the image?",
                "answer": "",
                "answers": json.dumps([shape, shape, "a " + shape]),
            }
        )
    _write_csv(
        root / "train" / "metadata.csv", train, ["file_name", "question", "answer", "answers"]
    )
    val = []
    for i in range(n_val):
        color, shape = rng.choice(COLORS), rng.choice(SHAPES)
        name = f"imgs/{i}.jpg"
        (root / "validation" / name).parent.mkdir(parents=True, exist_ok=True)
        draw_shape(color, shape).save(root / "validation" / name, "JPEG")
        other = "blue" if color == "red" else "red"
        answers = [color] * rng.randint(3, 10)
        answers += [
            rng.choice([other, color.capitalize(), color + "."]) for _ in range(10 - len(answers))
        ]
        val.append(
            {
                "file_name": name,
                "question": "What color is the shape?",
                "answers": answers,
                "question_id": 100 + i,
            }
        )
    (root / "validation" / "metadata.jsonl").write_text(
        "\n".join(json.dumps(r) for r in val) + "\n", encoding="utf-8"
    )
    test = []
    for i in range(n_test):
        name = f"{i}.png"
        (root / "test").mkdir(parents=True, exist_ok=True)
        draw_shape(rng.choice(COLORS), rng.choice(SHAPES)).save(root / "test" / name)
        test.append({"file_name": name, "question": "¿Qué color tiene la forma?"})
    _write_csv(root / "test" / "metadata.csv", test, ["file_name", "question"])
    return root


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("mine") / "my photos")


@pytest.fixture(scope="module")
def folder_dataset(folder_root, tmp_path_factory):
    return folder.prepare(folder_root, tmp_path_factory.mktemp("out") / "mine")


def test_counts_types_and_labels(folder_root, folder_dataset):
    ds = folder_dataset
    assert ds.meta["counts"] == {
        "test": {"questions": 4, "images": 4},
        "train": {"questions": 32, "images": 16},
        "validation": {"questions": 6, "images": 6},
    }
    train = ds.split("train")
    assert set(train["question_type"]) == {"what color is the", "what"}
    assert ds.answer_vocabulary_size == train["answer"].nunique() == 4  # not the 3,000 asked
    assert set(train["answer_type"]) == {"other"}
    shapes = train[train["question"] == "what shape is in the image?"]
    assert all(len(a) == 3 for a in shapes["answers"])  # the JSON list, kept raw
    assert set(shapes["answer"]) <= set(SHAPES)  # "a circle" is the same answer
    colors = train[train["question"].str.startswith("What color")]
    assert (colors["question"] == "What color is the shape, red or blue?").all()  # quoted comma
    val = ds.split("validation")
    assert sorted(val["question_id"]) == list(range(100, 106))
    assert all(len(a) == 10 for a in val["answers"])
    test = ds.split("test")
    assert (test["answer"] == "").all() and (test["answers"].map(len) == 0).all()
    assert test["question"].iloc[0] == "¿Qué color tiene la forma?"  # unicode kept
    for image_id in ds.images.index:  # nested paths with spaces resolve
        assert ds.image_path(image_id).is_file()
    nested = [i for i in ds.images.index if " things/shape " in i]
    assert len(nested) == 16 and ds.image_path(nested[0]).parent.parent.name == "photos"


def test_question_types_are_the_official_prefixes():
    assert question_types.question_type("What color is the car?") == "what color is the"
    assert (
        question_types.question_type("How many people are in the room?") == "how many people are in"
    )
    assert question_types.question_type("Is this a cat?") == "is this a"
    assert question_types.question_type("Zebras or horses?") == "none of the above"
    assert len(question_types.VQA_QUESTION_TYPES) == 65


def test_trains_evaluates_and_scores_ten_answers_officially(folder_root, folder_dataset, tmp_path):
    from vqa.evaluation import evaluate_run, evaluation_dir
    from vqa.runs import files
    from vqa.training import train

    run = tmp_path / "run"
    assert (
        train(folder_dataset, run, TINY_CONFIG.with_train(epochs=1), verbose=0)["epochs_run"] == 1
    )
    metrics = evaluate_run(run, folder_dataset, "validation")
    predictions = json.loads((run / files.PREDICTIONS).read_text())
    rows = [
        json.loads(line)
        for line in (folder_root / "validation" / "metadata.jsonl").read_text().splitlines()
    ]
    questions = folder_dataset.split("validation").set_index("question_id")
    annotations = [
        {
            "question_id": r["question_id"],
            "answer_type": "other",
            "question_type": questions.at[r["question_id"], "question_type"],
            "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(r["answers"])],
        }
        for r in rows
    ]
    expected = official.evaluate(annotations, predictions)
    assert metrics["overall"] == expected["overall"]
    assert metrics["per_question_type"] == expected["perQuestionType"]
    with pytest.raises(DatasetError, match="test has no answers"):
        evaluate_run(run, folder_dataset, "test")  # the unannotated split: predictions only
    kept = evaluation_dir(run, folder_dataset, "test")  # beside the run's own validation
    assert len(json.loads((kept / files.PREDICTIONS).read_text())) == 4
    assert json.loads((run / files.PREDICTIONS).read_text()) == predictions


def test_one_metadata_file_with_a_split_column(tmp_path):
    root = tmp_path / "flat"
    rows = []
    for i, split in enumerate(["train"] * 4 + ["test"] * 2):
        (root / "img").mkdir(parents=True, exist_ok=True)
        draw_shape("red", "circle").save(root / "img" / f"{i}.png")
        rows.append(
            {
                "file_name": f"img/{i}.png",
                "question": "is there a red shape?",
                "answer": "yes",
                "split": split,
            }
        )
    _write_csv(root / "metadata.csv", rows, ["file_name", "question", "answer", "split"])
    ds = folder.prepare(root, tmp_path / "out", copy_images=True)
    assert ds.meta["counts"]["train"]["questions"] == 4
    assert set(ds.split("train")["question_type"]) == {"is there a"}
    assert set(ds.split("train")["answer_type"]) == {"yes/no"}
    assert ds.image_path("img/0.png") == tmp_path / "out" / "images" / "img" / "0.png"


def test_cli(folder_root, tmp_path, capsys):
    assert (
        vqa_main(["prepare", "folder", "--root", str(folder_root), "--out", str(tmp_path / "cli")])
        == 0
    )
    out = capsys.readouterr().out
    assert "validation" in out and "no answers (unannotated)" in out


# --- bad input: one line naming the file and the line; --skip-bad lists it ----------


def _break(root, kind):
    """Damage a fresh folder one way; return (file name, what the error says, rows lost)."""
    meta = root / "train" / "metadata.csv"
    lines = meta.read_text(encoding="utf-8").splitlines()
    if kind == "no metadata":
        for split in ("train", "validation", "test"):
            for name in folder.METADATA:
                (root / split / name).unlink(missing_ok=True)
        return str(root), "No metadata file", None
    if kind == "a split folder without metadata":
        meta.unlink()  # train/ would be dropped, leaving a dataset with nothing to train on
        return str(root / "train"), "has no metadata.csv or metadata.jsonl", None
    if kind == "one image_id, two files":
        table = pd.read_csv(meta, dtype=str, keep_default_na=False)
        table["image_id"] = [f"i{n}" for n in range(len(table))]
        table.loc[[0, 2], "image_id"] = "same"  # rows 0 and 2 are two images
        table.to_csv(meta, index=False)
        return meta.name, "line 4: image_id 'same' names two files", 2
    if kind == "malformed csv":
        lines[3] = lines[3] + ",extra"
        meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return meta.name, "line 4: 4 columns in the header but another number", None
    if kind == "malformed jsonl":
        jsonl = root / "validation" / "metadata.jsonl"
        rows = jsonl.read_text().splitlines()
        rows[2] = rows[2][:-5]
        jsonl.write_text("\n".join(rows) + "\n")
        return jsonl.name, "line 3: not valid JSON", None
    if kind == "missing image":
        (root / "train" / "photos").rename(root / "train" / "moved")
        return meta.name, "line 2, file_name .*: image file not found", 32
    if kind == "absolute file_name":
        lines[1] = "/etc/passwd" + lines[1][lines[1].index(",") :]
        meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return meta.name, "line 2: file_name '/etc/passwd' is absolute or escapes", 1
    if kind == "escaping file_name":
        lines[1] = "../../x.png" + lines[1][lines[1].index(",") :]
        meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return meta.name, "line 2: file_name '../../x.png' is absolute or escapes", 1
    if kind == "not an image":
        (root / "test" / "0.png").write_text("hello")
        return "metadata.csv", "line 2, file_name 'test/0.png': unreadable image", 1
    if kind == "empty question":
        row = lines[1].split(",")
        lines[1] = ",".join([row[0], '" "', *row[-2:]])
        meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return meta.name, "line 2: empty question", 1
    if kind == "duplicate question_id":
        jsonl = root / "validation" / "metadata.jsonl"
        rows = [json.loads(r) for r in jsonl.read_text().splitlines()]
        rows[3]["question_id"] = rows[1]["question_id"]
        jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return jsonl.name, "line 4: duplicate question_id 101", 1
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "no metadata",
        "a split folder without metadata",
        "one image_id, two files",
        "malformed csv",
        "malformed jsonl",
        "missing image",
        "absolute file_name",
        "escaping file_name",
        "not an image",
        "empty question",
        "duplicate question_id",
    ],
)
def test_bad_input_is_one_line_or_skipped(tmp_path, kind):
    root = make_folder(tmp_path / "root")
    file, message, lost = _break(root, kind)
    out = tmp_path / "out"
    with pytest.raises(
        DatasetError, match=f"({re.escape(file)}.*({message}))|({message}.*{re.escape(file)})"
    ) as info:
        folder.prepare(root, out)
    assert "\n" not in str(info.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    if lost is None:
        return  # a file that cannot be read has no records to skip
    ds = folder.prepare(root, out, skip_bad=True)
    skipped = pd.read_csv(ds.root / SKIPPED)
    assert skipped["file"].str.endswith(file).all()
    assert len(skipped) == lost  # one line for every question left out
    assert sum(c["questions"] for c in ds.meta["counts"].values()) == 42 - lost
    PreparedDataset.load(ds.root)


@pytest.mark.parametrize(
    "text, reported",
    [
        ("file_name,question\na.png,q1\n\nb.png,q2,extra\n", "line 4: 2 columns"),  # blank line
        (
            'file_name,question\na.png,"q1\nmore"\nb.png,q2,x\n',
            "line 4: 2 columns",
        ),  # quoted newline
        ('file_name,question\na.png,q1\nb.png,"q2\n', "line 3: malformed CSV"),  # never closed
        ('file_name,question\na.png,q1\nb.png,"q2"x\n', "line 3: malformed CSV"),
    ],
)
def test_a_bad_csv_row_is_named_by_the_line_it_starts_on(tmp_path, text, reported):
    path = tmp_path / "metadata.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=reported):
        folder.read_rows(path)


def test_csv_records_keep_the_lines_they_start_on(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_text('file_name,question\na.png,"q1\nmore"\n\nb.png,q2\r\nc.png,q3\n')
    assert [line for line, _ in folder.read_rows(path)] == [2, 5, 6]
