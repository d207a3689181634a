"""VQA v1/v2 preparation on official-format files generated here, and `vqa score`
against the official evaluator's procedure (tests/official_vqa_eval.py) run on the same
raw files."""

import json
import random

import official_vqa_eval as official
import pytest
from PIL import Image

from data_prep import vqa as vqa_prep
from data_prep.common import SKIPPED
from vqa.cli import main as vqa_main
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError
from vqa.evaluation import score_results_file

ANSWER_POOL = {  # answer type -> raw human answers, quirks included
    "yes/no": ["yes", "no", "Yes", "yes.", "no "],
    "number": ["2", "two", "3", "1", "10", "1,000", "2.5"],
    "other": [
        "red",
        "the red one",
        "Red",
        "frisbee",
        "a frisbee",
        "black & white",
        "man's hat",
        "t-shirt",
        "dont know",
        "hot-dog",
        "blue;green",
    ],
}
QUESTION_TYPES = {
    "yes/no": ["is the", "are there", "does the"],
    "number": ["how many", "what number is"],
    "other": ["what color is the", "what is the man", "what"],
}
SPLIT_IMAGES = {"train2014": range(1, 9), "val2014": range(100, 105), "test2015": range(500, 504)}


def _image(path, rng):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(
        "RGB",
        (rng.randint(20, 40), rng.randint(20, 40)),
        tuple(rng.randint(0, 255) for _ in range(3)),
    ).save(path, "JPEG")


def make_vqa_root(root, version=2, seed=0):
    """Official-format VQA files and COCO-named images for three splits plus test-dev.

    Images of train2014 use the COCO_train2014_ naming, val2014 the plain 000000xxxxxx
    naming of later COCO releases and lives under images/; the test splits have no
    annotations, and test-dev2015 is a subset of test2015 with the same question ids.
    """
    rng = random.Random(seed)
    q_name, a_name = vqa_prep.FILES[version]
    qid = 0
    test_questions = []
    for split, ids in SPLIT_IMAGES.items():
        folder = root / ("images/" + split if split == "val2014" else split)
        questions, annotations = [], []
        for coco_id in ids:
            name = (
                f"{coco_id:012d}.jpg" if split == "val2014" else f"COCO_{split}_{coco_id:012d}.jpg"
            )
            _image(folder / name, rng)
            for _ in range(3):
                qid += 1
                atype = rng.choice(sorted(ANSWER_POOL))
                qtype = rng.choice(QUESTION_TYPES[atype])
                questions.append(
                    {"image_id": coco_id, "question_id": qid, "question": f"{qtype} thing {qid}?"}
                )
                main = rng.choice(ANSWER_POOL[atype])
                answers = [
                    main if rng.random() < 0.5 else rng.choice(ANSWER_POOL[atype])
                    for _ in range(10)
                ]
                annotations.append(
                    {
                        "question_id": qid,
                        "image_id": coco_id,
                        "question_type": qtype,
                        "answer_type": atype,
                        "multiple_choice_answer": main,
                        "answers": [
                            {"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                            for i, a in enumerate(answers)
                        ],
                    }
                )
        (root / q_name.format(split)).write_text(
            json.dumps(
                {
                    "info": {},
                    "task_type": "Open-Ended",
                    "data_subtype": split,
                    "questions": questions,
                }
            )
        )
        if split == "test2015":
            test_questions = questions
        else:
            (root / a_name.format(split)).write_text(
                json.dumps({"info": {}, "data_subtype": split, "annotations": annotations})
            )
    (root / q_name.format("test-dev2015")).write_text(
        json.dumps({"info": {}, "questions": test_questions[::2]})
    )
    return root


@pytest.fixture(scope="module")
def vqa_root(tmp_path_factory):
    return make_vqa_root(tmp_path_factory.mktemp("vqa-v2"))


@pytest.fixture(scope="module")
def vqa_dataset(vqa_root, tmp_path_factory):
    return vqa_prep.prepare(vqa_root, tmp_path_factory.mktemp("out") / "vqa")


def test_counts_answers_and_types(vqa_root, vqa_dataset):
    ds = vqa_dataset
    assert ds.name == "vqa-v2"
    assert ds.meta["counts"] == {
        "test-dev2015": {"questions": 6, "images": 4},
        "test2015": {"questions": 12, "images": 4},
        "train2014": {"questions": 24, "images": 8},
        "val2014": {"questions": 15, "images": 5},
    }
    assert len(ds.images) == 17  # test-dev2015 shares test2015's images
    assert ds.train_split == "train2014"
    # --answers 3000 asked; meta says what training keeps: every one of the few there are
    assert ds.answer_vocabulary_size == ds.split("train2014")["answer"].nunique() < 3000
    q = ds.questions.set_index(["split", "question_id"])
    for split in ("train2014", "val2014"):
        raw = json.loads((vqa_root / f"v2_mscoco_{split}_annotations.json").read_text())
        for a in raw["annotations"]:
            row = q.loc[(split, a["question_id"])]
            assert list(row["answers"]) == [x["answer"] for x in a["answers"]]  # all ten, raw
            assert row["answer_type"] == a["answer_type"]
            assert row["question_type"] == a["question_type"]
    test = ds.split("test2015")
    assert (test["answers"].map(len) == 0).all() and (test["answer"] == "").all()
    for image_id in ds.images.index:  # both COCO namings, and images/ found
        assert ds.image_path(image_id).is_file()


@pytest.mark.parametrize("evaluator", ["2021", "2017"])
def test_vqa_score_equals_official_evaluator(vqa_root, vqa_dataset, tmp_path, capsys, evaluator):
    """The raw files, scored by the port of the official procedure, against `vqa score`
    on the prepared dataset: every figure, through the API and the command line."""
    rng = random.Random(3)
    raw = json.loads((vqa_root / "v2_mscoco_val2014_annotations.json").read_text())
    results = []
    for a in raw["annotations"]:  # human answers as typed, other answers, and misses
        pool = [x["answer"] for x in a["answers"]] + ANSWER_POOL[a["answer_type"]] + ["zzz"]
        results.append({"question_id": a["question_id"], "answer": rng.choice(pool)})
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(results))
    expected = official.evaluate(raw["annotations"], results, evaluator)
    assert 0 < expected["overall"] < 100
    ours = score_results_file(vqa_dataset.root, "val2014", results_file, evaluator)
    assert ours["overall"] == expected["overall"]
    assert ours["per_question_type"] == dict(sorted(expected["perQuestionType"].items()))
    assert ours["per_answer_type"] == dict(sorted(expected["perAnswerType"].items()))
    assert (
        vqa_main(
            [
                "score",
                str(vqa_dataset.root),
                "--split",
                "val2014",
                "--results",
                str(results_file),
                "--json",
                "--evaluator",
                evaluator,
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed == ours and printed["evaluator"] == evaluator


def test_labels_are_what_the_default_evaluator_scores(tmp_path):
    """Ten identical "two" are matched by "two" alone from 2021: that is the label, not
    the normalised majority "2"; elsewhere the normalised majority answer stays."""
    root = make_vqa_root(tmp_path / "root")
    afile = root / "v2_mscoco_train2014_annotations.json"
    data = json.loads(afile.read_text())
    first, second = data["annotations"][:2]
    first["multiple_choice_answer"] = "two"
    for ans in first["answers"]:
        ans["answer"] = "two"
    second["multiple_choice_answer"] = "Two"
    for i, ans in enumerate(second["answers"]):
        ans["answer"] = "Two" if i < 6 else "2"
    afile.write_text(json.dumps(data))
    q = vqa_prep.prepare(root, tmp_path / "out").split("train2014").set_index("question_id")
    assert q.at[first["question_id"], "answer"] == "two"
    assert q.at[second["question_id"], "answer"] == "2"


def test_unannotated_split_cannot_be_scored(vqa_dataset, tmp_path):
    test = vqa_dataset.split("test2015")
    results = tmp_path / "r.json"
    results.write_text(
        json.dumps([{"question_id": int(q), "answer": "yes"} for q in test["question_id"]])
    )
    with pytest.raises(DatasetError, match="test2015 has no answers"):
        score_results_file(vqa_dataset.root, "test2015", results)


def test_v1_names_are_detected(tmp_path):
    ds = vqa_prep.prepare(
        make_vqa_root(tmp_path / "v1", version=1), tmp_path / "out", max_answers=5
    )
    assert ds.name == "vqa-v1" and ds.answer_vocabulary_size == 5
    assert set(ds.splits) == {"train2014", "val2014", "test2015", "test-dev2015"}


def test_both_versions_need_a_choice(tmp_path):
    root = make_vqa_root(tmp_path / "both")
    (root / "OpenEnded_mscoco_val2014_questions.json").write_text('{"questions": []}')
    with pytest.raises(DatasetError, match="both VQA v1 and v2.*--version"):
        vqa_prep.prepare(root, tmp_path / "out")


def test_report_and_cli(vqa_root, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        vqa_main(["prepare", "vqa", "--root", str(vqa_root), "--out", str(out), "--answers", "4"])
        == 0
    )
    text = capsys.readouterr().out
    assert "train2014" in text and "no answers (unannotated)" in text
    assert "answer vocabulary: 4 answers (top 4 of the train2014 split)" in text
    assert "answer in vocabulary:" in text


# --- bad input: one clear error naming the file and record; --skip-bad lists it -------


def _break(root, kind):
    """Damage a fresh VQA root in one way; return what the error must name."""
    qfile = root / "v2_OpenEnded_mscoco_train2014_questions.json"
    afile = root / "v2_mscoco_train2014_annotations.json"
    questions, annotations = json.loads(qfile.read_text()), json.loads(afile.read_text())
    first = questions["questions"][0]
    if kind == "malformed json":
        afile.write_text(afile.read_text()[:-20])
        return afile.name, "not valid JSON"
    if kind == "missing image":
        (root / "train2014" / f"COCO_train2014_{first['image_id']:012d}.jpg").unlink()
        return (
            qfile.name,
            f"question_id={first['question_id']}.*image {first['image_id']} not found",
        )
    if kind == "unknown question":
        extra = dict(annotations["annotations"][0], question_id=999999)
        annotations["annotations"].append(extra)
        afile.write_text(json.dumps(annotations))
        return afile.name, "question_id=999999: annotation for a question not in"
    if kind == "empty question":
        first["question"] = "   "
        qfile.write_text(json.dumps(questions))
        return qfile.name, f"question_id={first['question_id']}: empty question"
    if kind == "duplicate id":
        questions["questions"].append(dict(first, question="again?"))
        qfile.write_text(json.dumps(questions))
        return qfile.name, f"question_id={first['question_id']}: duplicate question_id"
    if kind == "unreadable image":
        path = root / "train2014" / f"COCO_train2014_{first['image_id']:012d}.jpg"
        path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
        return path.name, "unreadable image"
    if kind == "not an image":
        path = root / "train2014" / f"COCO_train2014_{first['image_id']:012d}.jpg"
        path.write_text("hello")
        return path.name, "unreadable image"
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "malformed json",
        "missing image",
        "unknown question",
        "empty question",
        "duplicate id",
        "unreadable image",
        "not an image",
    ],
)
def test_bad_input_is_one_clear_error_or_skipped(tmp_path, kind):
    root = make_vqa_root(tmp_path / "root")
    file, record = _break(root, kind)
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=f"{file}.*{record}"):
        vqa_prep.prepare(root, out)
    assert not out.exists() and list(tmp_path.iterdir()) == [root]  # nothing left behind
    if kind == "malformed json":
        return  # a file that cannot be parsed has no records to skip
    ds = vqa_prep.prepare(root, out, skip_bad=True)
    skipped = (ds.root / SKIPPED).read_text()
    assert file in skipped
    n_train = 24 - (
        kind
        in ("missing image", "empty question", "unreadable image", "not an image", "duplicate id")
    ) * (1 if kind in ("empty question", "duplicate id") else 3)
    assert ds.meta["counts"]["train2014"]["questions"] == n_train
    PreparedDataset.load(ds.root)


def test_train_and_evaluate_on_prepared_vqa(vqa_dataset, tmp_path):
    """The train2014 split trains (ten-answer soft targets, top-K answers from meta),
    val2014 scores, and an unannotated test split still yields its predictions."""
    from conftest import TINY_CONFIG

    from vqa.data.text import Vocabulary
    from vqa.evaluation import evaluate_run, evaluation_dir
    from vqa.runs import files
    from vqa.training import train

    run = tmp_path / "run"
    summary = train(vqa_dataset, run, TINY_CONFIG.with_train(epochs=1), verbose=0)
    assert summary["epochs_run"] == 1
    answers = Vocabulary.load(run / files.ANSWER_VOCAB)
    fit_answers = set(vqa_dataset.split("train2014")["answer"])
    assert 1 < len(answers) <= len(fit_answers)  # all of them: fewer than the 3,000
    metrics = evaluate_run(run, vqa_dataset, "val2014")
    assert metrics["n_questions"] == 15 and 0 <= metrics["overall"] <= 100
    with pytest.raises(DatasetError, match="test2015 has no answers.*predictions are in"):
        evaluate_run(run, vqa_dataset, "test2015")
    kept = evaluation_dir(run, vqa_dataset, "test2015")  # not the run's own val2014 ones
    predicted = json.loads((kept / files.PREDICTIONS).read_text())
    assert len(json.loads((run / files.PREDICTIONS).read_text())) == 15
    assert len(predicted) == 12 and all(isinstance(p["answer"], str) for p in predicted)


def test_answer_vocabulary_size_comes_from_the_dataset_unless_configured(vqa_dataset):
    from conftest import TINY_CONFIG

    from vqa.training import build_vocabularies

    train = vqa_dataset.split("train2014")
    assert train["answer"].nunique() > 4
    _, answers = build_vocabularies(train, TINY_CONFIG, dataset_answers=2)
    assert len(answers) == 2
    _, answers = build_vocabularies(train, TINY_CONFIG.with_train(max_answers=4), 2)
    assert len(answers) == 4
    _, answers = build_vocabularies(train, TINY_CONFIG, None)
    assert len(answers) == train["answer"].nunique()


def test_splits_without_images(tmp_path):
    root = make_vqa_root(tmp_path / "root")
    for f in (root / "test2015").iterdir():
        f.unlink()
    (root / "test2015").rmdir()  # questions downloaded, images not
    with pytest.raises(DatasetError, match="No images for split test2015.*--splits"):
        vqa_prep.prepare(root, tmp_path / "out")
    ds = vqa_prep.prepare(root, tmp_path / "out", splits=["train2014", "val2014"])
    assert ds.splits == ["train2014", "val2014"]
    with pytest.raises(DatasetError, match=r"split\(s\) \['val2015'\]"):
        vqa_prep.prepare(root, tmp_path / "out2", splits=["val2015"])


def test_a_split_emptied_by_skip_bad_is_reported(tmp_path):
    root = make_vqa_root(tmp_path / "root")
    for f in (root / "images" / "val2014").iterdir():
        f.unlink()
    ds = vqa_prep.prepare(root, tmp_path / "out", skip_bad=True)
    assert "val2014" not in ds.splits
    skipped = (ds.root / SKIPPED).read_text()
    assert skipped.count("not found in") == 15
    assert "split val2014,every question of the split was left out" in skipped


def test_skipped_records_have_their_own_reason(tmp_path):
    root = make_vqa_root(tmp_path / "root")
    file, _ = _break(root, "empty question")  # its annotation is not "unknown"
    ds = vqa_prep.prepare(root, tmp_path / "out", skip_bad=True)
    reasons = (ds.root / SKIPPED).read_text().splitlines()[1:]
    assert len(reasons) == 1 and "empty question" in reasons[0]


def test_majority_answer_that_normalises_to_nothing_is_kept(tmp_path):
    root = make_vqa_root(tmp_path / "root")
    afile = root / "v2_mscoco_train2014_annotations.json"
    data = json.loads(afile.read_text())
    data["annotations"][0]["multiple_choice_answer"] = "A"  # "which letter is it?"
    for ans in data["annotations"][0]["answers"][:6]:
        ans["answer"] = "A"
    afile.write_text(json.dumps(data))
    ds = vqa_prep.prepare(root, tmp_path / "out")
    qid = data["annotations"][0]["question_id"]
    q = ds.split("train2014").set_index("question_id")
    assert q.at[qid, "answer"] == "a"


def test_one_coco_id_in_two_folders_is_two_images(tmp_path):
    root = make_vqa_root(tmp_path / "root")
    qfile = root / "v2_OpenEnded_mscoco_val2014_questions.json"
    afile = root / "v2_mscoco_val2014_annotations.json"
    q, a = json.loads(qfile.read_text()), json.loads(afile.read_text())
    q["questions"][0]["image_id"] = a["annotations"][0]["image_id"] = 1  # train2014 has 1 too
    qfile.write_text(json.dumps(q))
    afile.write_text(json.dumps(a))
    (root / "images" / "val2014" / "000000000001.jpg").write_bytes(
        (root / "images" / "val2014" / "000000000100.jpg").read_bytes()
    )
    ds = vqa_prep.prepare(root, tmp_path / "out")
    val = ds.split("val2014")
    image_id = val.set_index("question_id").at[q["questions"][0]["question_id"], "image_id"]
    assert image_id == "val2014/1"
    assert ds.image_path(image_id) == root.resolve() / "images/val2014/000000000001.jpg"
    assert ds.image_path("train2014/1").name == "COCO_train2014_000000000001.jpg"
