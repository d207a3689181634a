import json

import pandas as pd
import pytest

from data_prep.common import write_prepared
from data_prep.easy_vqa import main as easy_vqa_main
from data_prep.easy_vqa import question_type
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError


def test_easy_vqa_counts(easy_vqa_dataset):
    ds = easy_vqa_dataset
    assert ds.meta["counts"] == {
        "train": {"questions": 38575, "images": 4000},
        "test": {"questions": 9673, "images": 1000},
    }
    assert len(ds.images) == 5000
    assert ds.questions["question_id"].is_unique
    assert sorted(ds.questions["answer"].unique()) == sorted(
        [
            "circle",
            "green",
            "red",
            "gray",
            "yes",
            "teal",
            "black",
            "rectangle",
            "yellow",
            "triangle",
            "brown",
            "blue",
            "no",
        ]
    )
    assert set(ds.questions["answer_type"]) == {"yes/no", "other"}
    assert set(ds.questions["question_type"]) == {"color", "shape", "yes/no", "yes/no negated"}
    # Copied images are readable where images.parquet says they are.
    first = ds.images.index[0]
    assert ds.image_path(first).is_file()
    pixels, rows = ds.load_images([first], 64)
    assert pixels.shape == (1, 64, 64, 3) and rows == {first: 0}


def test_easy_vqa_splits_do_not_share_images(easy_vqa_dataset):
    q = easy_vqa_dataset.questions
    train, test = (set(q.loc[q["split"] == s, "image_id"]) for s in ("train", "test"))
    assert train and test and not train & test


@pytest.mark.parametrize(
    "question, expected",
    [
        ("what is the blue shape?", "shape"),
        ("what color is the triangle?", "color"),
        ("what is the color of the shape?", "color"),
        ("is there a red shape?", "yes/no"),
        ("is no yellow shape present?", "yes/no negated"),
        ("does the image not contain a circle?", "yes/no negated"),
    ],
)
def test_easy_vqa_question_types(question, expected):
    assert question_type(question) == expected


def _tables():
    questions = pd.DataFrame(
        {
            "question_id": [0, 1],
            "image_id": ["a", "a"],
            "split": ["train", "train"],
            "question": ["is it red?", "what is it?"],
            "answers": [["yes"], ["ball"]],
            "answer": ["yes", "ball"],
            "question_type": ["yes/no", "what"],
            "answer_type": ["yes/no", "other"],
        }
    )
    images = pd.DataFrame({"image_id": ["a"], "path": ["a.png"], "width": [4], "height": [4]})
    return questions, images


def test_write_is_atomic_when_filling_fails(tmp_path):
    questions, images = _tables()

    def crash(tmp):
        (tmp / "images").mkdir()
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_prepared(
            tmp_path / "out", name="t", source="t", questions=questions, images=images, fill=crash
        )
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temp dir remain


def test_invalid_rows_are_reported_by_file_row_and_column(tmp_path):
    questions, images = _tables()
    questions.at[1, "answers"] = ["ball"] * 11
    with pytest.raises(DatasetError, match=r"questions.parquet, row 1, column answers"):
        write_prepared(tmp_path / "out", name="t", source="t", questions=questions, images=images)
    assert not (tmp_path / "out").exists()


def test_unannotated_questions_have_no_answer(tmp_path):
    questions, images = _tables()
    questions.at[1, "answers"] = []  # a test-split question: nobody answered it
    with pytest.raises(DatasetError, match=r"row 1, column answer:.*without answers"):
        write_prepared(tmp_path / "out", name="t", source="t", questions=questions, images=images)
    questions.loc[1, ["answer", "answer_type"]] = ""
    ds = write_prepared(tmp_path / "out", name="t", source="t", questions=questions, images=images)
    assert list(ds.questions["answers"].map(len)) == [1, 0]


def test_question_with_unknown_image_is_rejected(tmp_path):
    questions, images = _tables()
    questions.loc[1, "image_id"] = "ghost"
    with pytest.raises(DatasetError, match="row 1, column image_id.*'ghost'"):
        write_prepared(tmp_path / "out", name="t", source="t", questions=questions, images=images)


def test_existing_output_needs_overwrite(tmp_path):
    questions, images = _tables()
    write_prepared(tmp_path / "out", name="t", source="t", questions=questions, images=images)
    with pytest.raises(DatasetError, match="already exists"):
        write_prepared(tmp_path / "out", name="t", source="t", questions=questions, images=images)
    write_prepared(
        tmp_path / "out", name="t2", source="t", questions=questions, images=images, overwrite=True
    )
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["name"] == "t2"


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: (d / "meta.json").unlink(), "meta.json is missing"),
        (lambda d: (d / "questions.parquet").write_text("junk"), "not a readable parquet"),
        (lambda d: (d / "meta.json").write_text("{"), "not valid JSON"),
        (lambda d: (d / "meta.json").write_text("5"), "must hold a JSON object"),
    ],
)
def test_damaged_dataset_is_a_clear_error(tmp_path, damage, match):
    questions, images = _tables()
    ds = write_prepared(tmp_path / "out", name="t", source="t", questions=questions, images=images)
    damage(ds.root)
    with pytest.raises(DatasetError, match=match):
        PreparedDataset.load(ds.root)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="Not a prepared dataset"):
        PreparedDataset.load(tmp_path / "nothing")


def test_module_entry_point(tmp_path, capsys):
    assert easy_vqa_main(["--out", str(tmp_path / "ev")]) == 0
    assert "38575 questions" in capsys.readouterr().out
    assert easy_vqa_main(["--out", str(tmp_path / "ev")]) == 1  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err


def test_overwrite_refuses_a_directory_that_is_not_a_dataset(tmp_path):
    questions, images = _tables()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match="Refusing to overwrite"):
        write_prepared(
            tmp_path / "out",
            name="t",
            source="t",
            questions=questions,
            images=images,
            overwrite=True,
        )
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # temp dir cleaned up
