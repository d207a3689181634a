"""Captions in the prepared dataset: the contract (captions.parquet, a captions-only
dataset), `vqa prepare coco-captions` (official JSON, Karpathy splits, bad input) and
the generated scenes' reference captions."""

import json
import re

import pandas as pd
import pytest
from PIL import Image

from data_prep import coco_captions, scenes
from data_prep.common import SKIPPED, write_prepared
from data_prep.scenes.captions import caption_table
from vqa.cli import main as vqa_main
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError

# Official COCO layout: coco id -> captions. Train images in DIR/train2014/, val images
# in DIR/images/val2014/ (both layouts are COCO's).
TRAIN = {
    11: ["A red square.", "  a square\n that is red "],
    12: ["A blue circle.", "blue"],
    13: ["A green thing.", "green", "a third"],
}
VAL = {21: ["A gray square.", "gray"], 22: ["A yellow dot.", "yellow", "dot"]}


def _png(path, color, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _official(images: dict, split: str) -> dict:
    annotations, next_id = [], 100 if split == "train2014" else 200
    for coco_id, captions in images.items():
        for caption in captions:
            annotations.append({"id": next_id, "image_id": coco_id, "caption": caption})
            next_id += 1
    return {
        "info": {},
        "images": [
            {"id": i, "file_name": f"COCO_{split}_{i:012d}.png", "width": 8, "height": 6}
            for i in images
        ],
        "annotations": annotations,
    }


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "coco"
    for images, split, folder in (
        (TRAIN, "train2014", "train2014"),
        (VAL, "val2014", "images/val2014"),
    ):
        for i in images:
            _png(root / folder / f"COCO_{split}_{i:012d}.png", (i, 0, 0), (8 + i % 3, 6))
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{split}.json").write_text(
            json.dumps(_official(images, split))
        )
    return root


def _edit(root, split, change):
    path = root / "annotations" / f"captions_{split}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- the contract --------------------------------------------------------------------


def _images(ids=("a", "b")):
    return pd.DataFrame(
        {"image_id": list(ids), "path": [f"{i}.png" for i in ids], "width": 4, "height": 4}
    )


def _captions(**changes):
    table = pd.DataFrame(
        {
            "caption_id": [0, 1, 2],
            "image_id": ["a", "a", "b"],
            "split": ["train", "train", "val"],
            "caption": ["a red one", "red", "a blue one"],
        }
    )
    for column, (row, value) in changes.items():
        table[column] = table[column].astype(object)
        table.at[row, column] = value
    return table


def test_a_captions_only_dataset_loads(tmp_path):
    ds = write_prepared(
        tmp_path / "out", name="t", source="t", images=_images(), captions=_captions()
    )
    ds = PreparedDataset.load(ds.root)
    assert ds.questions.empty and ds.splits == [] and ds.train_split is None
    assert ds.caption_splits == ["train", "val"]
    assert list(ds.caption_split("train")["caption"]) == ["a red one", "red"]
    assert ds.meta["caption_counts"] == {
        "train": {"captions": 2, "images": 1},
        "val": {"captions": 1, "images": 1},
    }
    with pytest.raises(DatasetError, match=r"Caption split 'test'.*\['train', 'val'\]"):
        ds.caption_split("test")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"caption": (1, "  ")}, r"captions.parquet, row 1, column caption: expected a non-empty"),
        ({"image_id": (2, "ghost")}, r"captions.parquet, row 2, column image_id: .*'ghost'"),
        ({"caption_id": (2, 0)}, r"captions.parquet, row 2, column caption_id: expected unique"),
        ({"split": (0, None)}, r"captions.parquet, row 0, column split"),
    ],
)
def test_bad_captions_name_file_row_and_column(tmp_path, changes, match):
    with pytest.raises(DatasetError, match=match):
        write_prepared(
            tmp_path / "out", name="t", source="t", images=_images(), captions=_captions(**changes)
        )
    assert list(tmp_path.iterdir()) == []


def test_no_questions_needs_captions_and_a_vqa_dataset_has_none(tmp_path, tiny_dataset):
    for captions in (None, _captions().iloc[:0]):
        with pytest.raises(DatasetError, match="has no questions, and there are no captions"):
            write_prepared(
                tmp_path / "out", name="t", source="t", images=_images(), captions=captions
            )
    assert tiny_dataset.captions is None and tiny_dataset.caption_splits == []
    with pytest.raises(DatasetError, match="has no captions"):
        tiny_dataset.caption_split("train")


# --- COCO captions -------------------------------------------------------------------


def test_official_coco_counts(coco_root, tmp_path):
    ds = coco_captions.prepare(coco_root, tmp_path / "out")
    assert ds.name == "coco-captions" and ds.splits == []
    assert ds.meta["caption_counts"] == {
        "train2014": {"captions": 7, "images": 3},
        "val2014": {"captions": 5, "images": 2},
    }
    assert sorted(ds.images.index) == ["11", "12", "13", "21", "22"]
    assert ds.images.at["12", "path"] == "train2014/COCO_train2014_000000000012.png"
    assert ds.images.at["22", "path"] == "images/val2014/COCO_val2014_000000000022.png"
    assert (ds.images.at["13", "width"], ds.images.at["13", "height"]) == (9, 6)
    assert all(ds.image_path(i).is_file() for i in ds.images.index)
    train = ds.caption_split("train2014")
    assert list(train["caption"][:2]) == ["A red square.", "a square that is red"]
    assert list(train["image_id"]) == ["11", "11", "12", "12", "13", "13", "13"]
    assert sorted(ds.captions["caption_id"]) == list(range(12))
    assert not (ds.root / SKIPPED).exists()


def test_max_images_and_cli(coco_root, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        vqa_main(
            [
                "prepare",
                "coco-captions",
                "--root",
                str(coco_root),
                "--out",
                str(out),
                "--max-images",
                "2",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "prepared coco-captions" in text
    assert re.search(r"train2014\s+4 captions\s+2 images", text), text
    assert re.search(r"val2014\s+5 captions\s+2 images", text), text
    assert vqa_main(["prepare", "coco-captions", "--root", str(coco_root), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def _karpathy(root, name="dataset_coco.json"):
    """Karpathy's splits over the official fixture's images: 11 train, 12 restval, 13
    and 21 val, 22 test."""
    splits = {11: "train", 12: "restval", 13: "val", 21: "val", 22: "test"}
    images = []
    for i, split in splits.items():
        coco_split = "train2014" if i < 20 else "val2014"
        captions = (TRAIN if i < 20 else VAL)[i]
        images.append(
            {
                "filepath": coco_split,
                "filename": f"COCO_{coco_split}_{i:012d}.png",
                "imgid": len(images),
                "cocoid": i,
                "split": split,
                "sentences": [
                    {"raw": c, "tokens": c.split(), "sentid": 10 * i + j}
                    for j, c in enumerate(captions)
                ],
            }
        )
    path = root / name
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


def test_karpathy_splits(coco_root, tmp_path):
    ds = coco_captions.prepare(coco_root, tmp_path / "out", karpathy=_karpathy(coco_root))
    assert ds.name == "coco-karpathy"
    assert ds.meta["caption_counts"] == {
        "test": {"captions": 3, "images": 1},
        "train": {"captions": 4, "images": 2},
        "val": {"captions": 5, "images": 2},
    }
    assert set(ds.caption_split("train")["image_id"]) == {"11", "12"}  # restval is train
    assert ds.images.at["21", "path"] == "images/val2014/COCO_val2014_000000000021.png"


def test_flickr8k_layout(tmp_path):
    root = tmp_path / "flickr"
    images = []
    for imgid, split in enumerate(["train", "train", "val", "test"]):
        name = f"{1000 + imgid}_abc.jpg"
        _png(root / "Flicker8k_Dataset" / name, (imgid, 9, 9))
        images.append(
            {
                "filename": name,
                "imgid": imgid,
                "split": split,
                "sentences": [{"raw": f"a dog {k}"} for k in range(5)],
            }
        )
    split_file = tmp_path / "dataset_flickr8k.json"
    split_file.write_text(json.dumps({"images": images, "dataset": "flickr8k"}))
    ds = coco_captions.prepare(root, tmp_path / "out", karpathy=split_file)
    assert ds.name == "flickr8k-karpathy"
    assert {s: c["captions"] for s, c in ds.meta["caption_counts"].items()} == {
        "train": 10,
        "val": 5,
        "test": 5,
    }
    assert ds.images.at["2", "path"] == "Flicker8k_Dataset/1002_abc.jpg"


def _break(root, kind):
    """Damage the fixture one way; return (file, record) the error must name and the
    train2014 (images, captions) left with --skip-bad."""
    if kind == "missing image":
        (root / "train2014" / "COCO_train2014_000000000012.png").unlink()
        return (
            "captions_train2014.json",
            "image id=12, COCO_train2014_000000000012.png: image file not found in .*train2014",
            (2, 5),
        )
    if kind == "escaping path":
        _edit(root, "train2014", lambda d: d["images"][2].update(file_name="../x.png"))
        return "captions_train2014.json", "image id=13: image path '../x.png' escapes", (2, 4)
    if kind == "empty caption":
        _edit(root, "train2014", lambda d: d["annotations"][3].update(caption=" \n "))
        return "captions_train2014.json", "annotation id=103: empty caption", (3, 6)
    if kind == "unknown image id":
        _edit(
            root,
            "train2014",
            lambda d: d["annotations"].append({"id": 999, "image_id": 42, "caption": "a ghost"}),
        )
        return "captions_train2014.json", "annotation id=999: image_id=42 is not among", (3, 7)
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind", ["missing image", "escaping path", "empty caption", "unknown image id"]
)
def test_bad_input_is_one_clear_error_or_skipped(coco_root, tmp_path, kind):
    file, record, (n_images, n_captions) = _break(coco_root, kind)
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=f"{file}, {record}") as error:
        coco_captions.prepare(coco_root, out)
    assert "\n" not in str(error.value)
    assert not out.exists() and list(tmp_path.iterdir()) == [coco_root]  # nothing left
    ds = coco_captions.prepare(coco_root, out, skip_bad=True)
    assert ds.meta["caption_counts"]["train2014"] == {"captions": n_captions, "images": n_images}
    assert ds.meta["caption_counts"]["val2014"] == {"captions": 5, "images": 2}
    skipped = pd.read_csv(ds.root / SKIPPED)
    assert len(skipped) == 1 and skipped.at[0, "file"].endswith(file)
    assert re.match(re.escape(skipped.at[0, "record"]) + ": ", record)


def test_karpathy_empty_sentence_names_the_image(coco_root, tmp_path):
    path = _karpathy(coco_root)
    data = json.loads(path.read_text())
    data["images"][1]["sentences"][1]["raw"] = ""
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"dataset_coco.json, cocoid=12, sentence #1: empty"):
        coco_captions.prepare(coco_root, tmp_path / "out", karpathy=path)
    ds = coco_captions.prepare(coco_root, tmp_path / "out", karpathy=path, skip_bad=True)
    assert ds.meta["caption_counts"]["train"]["captions"] == 3


# --- generated scenes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes_dataset(tmp_path_factory):
    return scenes.prepare(tmp_path_factory.mktemp("scenes") / "data", images=40, seed=3)


OBJECT = r"a (?:(small|large) )?(\w+) (circle|square|triangle)"
PHRASE = re.compile(r"\b" + OBJECT + r"\b")
RELATION = re.compile(f"^{OBJECT} (left of|right of|above|below) {OBJECT}$")


def _matches(o, size, color, shape):
    return o["color"] == color and o["shape"] == shape and size in (None, "", o["size"])


def _holds(a, relation, b):
    (ax, ay, _), (bx, by, _) = a["pixel_coords"], b["pixel_coords"]
    return {"left of": ax < bx, "right of": ax > bx, "above": ay < by, "below": ay > by}[relation]


def _scene_of(ds, image_id):
    split, filename = image_id.split("/")
    _, by_index = scenes.read_split(ds.root, split)
    return next(s for s in by_index.values() if s["image_filename"] == filename)


def test_scene_captions_describe_what_is_there(scenes_dataset):
    ds = scenes_dataset
    captions = ds.captions
    per_image = captions.groupby("image_id")["caption"]
    assert set(per_image.groups) == set(ds.images.index)
    assert (per_image.size() == scenes.CAPTIONS_PER_IMAGE).all()
    assert (per_image.nunique() == scenes.CAPTIONS_PER_IMAGE).all()  # different wordings
    question_split = ds.questions.groupby("image_id")["split"].first()
    assert (captions["split"] == captions["image_id"].map(question_split)).all()
    assert ds.meta["caption_counts"]["train"] == {"captions": 36 * 5, "images": 36}
    assert captions["caption"].map(lambda c: len(c.split())).max() <= 16
    kinds = set()
    for image_id, texts in per_image:
        objects = _scene_of(ds, image_id)["objects"]
        colors, shapes = {o["color"] for o in objects}, {o["shape"] for o in objects}
        for text in texts:
            words = set(text.replace(",", " ").replace(":", " ").split())
            assert words & set(scenes.COLORS) <= colors, (text, objects)
            assert {w.rstrip("s") for w in words} & set(scenes.SHAPES) <= shapes, text
            for size, color, shape in PHRASE.findall(text):
                if color in scenes.COLORS:
                    assert any(_matches(o, size, color, shape) for o in objects), text
            relation = RELATION.match(text)
            if relation:
                *first, rel, size, color, shape = relation.groups()
                assert any(
                    _matches(a, *first) and _matches(b, size, color, shape) and _holds(a, rel, b)
                    for a in objects
                    for b in objects
                    if a is not b
                ), (text, objects)
            number = scenes.captions.NUMBERS.index
            part = re.match(r"^\w+ objects, (\w+) of them (?:a )?(\w+?)s?$", text)
            if part:
                k, what = part.groups()
                attr = "color" if what in scenes.COLORS else "shape"
                assert number(k) == sum(o[attr] == what for o in objects), text
            group = re.match(r"^a picture of (\w+) (\w+) (\w+)s\b", text)
            if group:
                n, color, shape = group.groups()
                assert number(n) == sum(_matches(o, "", color, shape) for o in objects), text
            sizes = re.match(r"^(\w+) large and (\w+) small objects$", text)
            if sizes:
                assert [number(n) for n in sizes.groups()] == [
                    sum(o["size"] == size for o in objects) for size in ("large", "small")
                ]
            if " objects" in text and not re.search("(small|large) objects", text):
                n = text.split(" objects")[0].split()[-1]
                assert n == scenes.captions.NUMBERS[len(objects)], (text, len(objects))
            kinds.add(
                text.split()[1]
                if text.startswith("a picture")
                else "relation"
                if re.search(r"(left of|right of|above|below)", text)
                else text.split()[0]
            )
    assert {"picture", "relation", "there"} <= kinds


def test_scene_captions_are_reproducible_and_seeded(scenes_dataset, tmp_path):
    root = tmp_path / "gen"
    scenes.generate(root, images=20, seed=3)
    again = caption_table(root, 3, ["train", "test"])
    assert caption_table(root, 3, ["train", "test"]).equals(again)
    other = caption_table(root, 4, ["train", "test"])
    assert (other["caption"] != again["caption"]).mean() > 0.5
    scene = _scene_of(scenes_dataset, "train/CLEVR_train_000000.png")
    assert scenes.describe(scene, 3) == list(
        scenes_dataset.captions.loc[
            scenes_dataset.captions["image_id"] == "train/CLEVR_train_000000.png", "caption"
        ]
    )


def test_vqa_score_on_a_coco_fixture_equals_pycocoevalcap(tmp_path, capsys):
    """A COCO-format fixture of 30 images with five raw references each (capitals,
    punctuation), prepared, then a results file scored by `vqa score`, against
    pycocoevalcap's scorers on its own Java PTB tokens (ours where Java is missing)."""
    pytest.importorskip("pycocoevalcap.bleu.bleu")
    import shutil

    import numpy as np
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from vqa.metrics.captions import tokenize

    rng = np.random.RandomState(5)
    words = "a the man woman dog cat on in with red blue sitting riding table street".split()

    def sentence():
        text = " ".join(rng.choice(words, rng.randint(2, 11)))
        return text[0].upper() + text[1:] + rng.choice([".", "!", " .", ", ok."])

    val = {100 + i: [sentence() for _ in range(5)] for i in range(30)}
    root = tmp_path / "coco"
    for i in val:
        _png(root / "val2014" / f"COCO_val2014_{i:012d}.png", (i, 0, 0))
    (root / "annotations").mkdir()
    (root / "annotations" / "captions_val2014.json").write_text(
        json.dumps(_official(val, "val2014"))
    )
    assert (
        vqa_main(["prepare", "coco-captions", "--root", str(root), "--out", str(tmp_path / "data")])
        == 0
    )
    hyps = {str(i): (refs[0] if i % 4 == 0 else sentence()) for i, refs in val.items()}
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": int(k), "caption": v} for k, v in hyps.items()]))
    capsys.readouterr()
    assert (
        vqa_main(
            [
                "score",
                str(tmp_path / "data"),
                "--split",
                "val2014",
                "--results",
                str(results),
                "--json",
            ]
        )
        == 0
    )
    ours = json.loads(capsys.readouterr().out)
    assert ours["n_images"] == 30

    refs = {str(i): r for i, r in val.items()}
    if shutil.which("java"):
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
        res = tokenizer.tokenize({k: [{"caption": v}] for k, v in hyps.items()})
    else:
        gts = {k: [tokenize(c) for c in v] for k, v in refs.items()}
        res = {k: [tokenize(v)] for k, v in hyps.items()}
    expected = dict(
        zip(["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"], Bleu(4).compute_score(gts, res, verbose=0)[0])
    )
    expected["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    expected["CIDEr-D"] = Cider().compute_score(gts, res)[0]
    for name, value in expected.items():  # ours: percent to two decimals = 4 decimals
        assert abs(ours[name] - 100 * value) <= 0.005 + 1e-9, (name, ours[name], value)
    assert expected["BLEU-4"] > 0.1 and expected["CIDEr-D"] > 0.1
