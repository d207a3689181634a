"""experiments/probes/family_subset.py: some question families of a dataset, images in place."""

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from family_subset import family_subset, main  # noqa: E402


def test_keeps_only_the_families_and_reads_the_images_where_they_are(tiny_dataset, tmp_path):
    kept = sorted(tiny_dataset.questions["question_type"].unique())[:1]
    subset = family_subset(tiny_dataset.root, tmp_path / "subset", kept)
    expected = tiny_dataset.questions[tiny_dataset.questions["question_type"].isin(kept)]
    assert 0 < len(subset.questions) == len(expected) < len(tiny_dataset.questions)
    assert set(subset.questions["question_id"]) == set(expected["question_id"])
    assert set(subset.splits) == set(expected["split"])
    assert set(subset.images.index) == set(expected["image_id"])
    image_id = subset.questions["image_id"].iloc[0]
    assert subset.image_path(image_id) == tiny_dataset.image_path(image_id).resolve()
    assert not (tmp_path / "subset" / "images").exists()  # nothing copied


def test_an_unknown_family_is_refused_and_no_arguments_print_the_usage(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="has no question type"):
        family_subset(tiny_dataset.root, tmp_path / "x", ["no such family"])
    assert not (tmp_path / "x").exists()
    assert main([]) == 2
