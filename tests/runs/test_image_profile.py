"""Foreign-image warnings: a run's image profile, calibrated on its held-out images."""

import numpy as np
import pytest
from conftest import COLORS, SHAPES, draw_shape
from sklearn.datasets import load_sample_images

from vqa.inference import Preprocessing
from vqa.runs.image_profile import NEIGHBOURS, ImageProfile, describe

PIXELS = Preprocessing("square", 64).pixels


def _shapes(n, seed):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        image = draw_shape(rng.choice(list(COLORS)), rng.choice(SHAPES), 64)
        images.append(image.rotate(float(rng.uniform(0, 30)), fillcolor="white"))
    return np.stack([PIXELS(i) for i in images])


def _photos():
    """The two sample photographs scikit-learn ships, and 20 square crops of each."""
    rng = np.random.default_rng(0)
    out = []
    for photo in load_sample_images().images:
        out.append(photo)
        h, w, _ = photo.shape
        for _ in range(20):
            side = int(rng.integers(48, min(h, w)))
            y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            out.append(photo[y : y + side, x : x + side])
    return np.stack([PIXELS(p) for p in out])


@pytest.fixture(scope="module")
def profile():
    return ImageProfile.fit(describe(_shapes(300, 0)), describe(_shapes(200, 1)))


def test_photographs_are_foreign_to_a_profile_of_shapes_and_new_shapes_are_not(profile):
    assert profile.is_foreign(_photos()).all()
    assert profile.is_foreign(_shapes(400, 2)).mean() <= 0.05  # calibrated at 1 in 100


def test_the_profile_saves_and_loads_the_same(profile, tmp_path):
    profile.save(tmp_path / "image_profile.npz")
    again = ImageProfile.load(tmp_path / "image_profile.npz")
    probe = describe(_photos()[:5])
    np.testing.assert_array_equal(again.distance(probe), profile.distance(probe))
    assert again.threshold == profile.threshold
    assert ImageProfile.load(tmp_path / "none.npz") is None  # a run from before profiles


def test_the_descriptor_reads_any_size_and_too_few_images_are_refused():
    assert describe(np.zeros((2, 37, 53, 3), np.uint8)).shape == (2, 218)
    with pytest.raises(ValueError, match="needs more than"):
        ImageProfile.fit(describe(_shapes(NEIGHBOURS, 0)), describe(_shapes(3, 1)))


def test_a_trained_run_warns_of_a_photograph(tiny_run):
    from vqa import Answerer
    from vqa.runs import files
    from vqa.runs.image_profile import FOREIGN

    assert (tiny_run[0] / files.IMAGE_PROFILE).is_file()
    answerer = Answerer.load(tiny_run[0])
    photo, shape = load_sample_images().images[0], draw_shape("red", "circle")
    results = answerer.answer_batch([photo, shape], ["what shape is it?"] * 2)
    assert FOREIGN in results[0].warnings and FOREIGN not in results[1].warnings
