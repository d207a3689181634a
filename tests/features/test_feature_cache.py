"""The feature cache: extraction, resuming, shards, settings checks, training on it.

With the tests' tiny backbone (tiny_backbone.py), as a user's own would be: what is
checked is the cache, not the network (the real Lite0: test_features.py, test_demo.py)."""

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CONFIG, draw_shape, make_tiny_dataset
from tiny_backbone import NAME, tiny_cnn

import vqa.features.cache as cache_module
import vqa.features.extract as extract_module
from vqa import Answerer, evaluate_run
from vqa.cli import main
from vqa.config import Config, ModelConfig, load_config
from vqa.features.cache import FeatureCache, FeatureCacheError, feature_paths
from vqa.features.extract import extract_features
from vqa.training import train

SMALL = {"backbone": NAME, "batch_size": 2, "chunk_size": 4, "progress": False}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted extraction to compare the others with."""
    ds = make_tiny_dataset(tmp_path_factory.mktemp("ref") / "tiny")
    path = extract_features(ds, **SMALL)
    with h5py.File(path) as f:
        return f["features"][:], [s.decode() for s in f["image_id"][:]]


def _copy(tmp_path):
    return make_tiny_dataset(tmp_path / "tiny")


def _read(path):
    with h5py.File(path) as f:
        return f["features"][:]


def test_extract_writes_one_row_per_image(reference, tmp_path):
    features, ids = reference
    # The tiny set's 48 px images are seen at 64 px by default: a 2x2 grid.
    assert features.shape == (12, 2, 2, 16) and features.dtype == np.float16
    assert ids == sorted(ids) and len(set(ids)) == 12
    assert np.isfinite(features).all() and features.max() > 0


def test_killed_extraction_resumes_to_the_same_file(reference, tmp_path, monkeypatch):
    ds = _copy(tmp_path)
    real_replace = cache_module.os.replace
    calls = []

    def dying_replace(src, dst):
        if str(dst).endswith(".npy"):
            calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while the second chunk was being renamed
        real_replace(src, dst)

    monkeypatch.setattr(cache_module.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        extract_features(ds, **SMALL)
    monkeypatch.setattr(cache_module.os, "replace", real_replace)
    _, _, parts = feature_paths(ds, NAME)
    assert sorted(p.name for p in parts.glob("*.npy") if ".tmp" not in p.name) == ["000000.npy"]

    computed = []
    real_save = cache_module.np.save

    def counting_save(path, array):
        computed.append(path)
        real_save(path, array)

    monkeypatch.setattr(cache_module.np, "save", counting_save)
    path = extract_features(ds, **SMALL)
    assert len(computed) == 2  # chunks 1 and 2 only; chunk 0 was kept
    np.testing.assert_array_equal(_read(path), reference[0])
    assert not parts.exists()


def test_shards_merge_to_the_same_file(reference, tmp_path):
    ds = _copy(tmp_path)
    assert extract_features(ds, shard=(1, 2), **SMALL) is None
    path = extract_features(ds, shard=(0, 2), **SMALL)
    np.testing.assert_array_equal(_read(path), reference[0])


def test_cache_with_other_settings_is_refused(tmp_path):
    ds = _copy(tmp_path)
    extract_features(ds, **SMALL)
    with pytest.raises(FeatureCacheError, match="dtype: float16 != float32"):
        extract_features(ds, **{**SMALL, "dtype": "float32"})


def test_resume_with_another_batch_size_is_accepted(tmp_path, monkeypatch):
    ds = _copy(tmp_path)
    monkeypatch.setattr(extract_module, "merge_parts", lambda *a: None)  # stop before merging
    extract_features(ds, shard=(0, 3), **SMALL)
    monkeypatch.undo()
    path = extract_features(ds, **{**SMALL, "batch_size": 3})
    assert _read(path).shape[0] == 12


def test_a_short_last_batch_is_padded_to_the_traced_size(reference, tmp_path, monkeypatch):
    """The network sees one batch shape (another would be traced again); the padding
    rows are dropped, so the cache is the same."""
    import keras

    sizes = []
    real = keras.Model.predict_on_batch
    monkeypatch.setattr(
        keras.Model, "predict_on_batch", lambda self, x: sizes.append(len(x)) or real(self, x)
    )
    path = extract_features(_copy(tmp_path), NAME, batch_size=5, chunk_size=12, progress=False)
    assert sizes == [5, 5, 5]  # 12 images: 5, 5, and 2 padded to 5
    np.testing.assert_allclose(
        _read(path).astype("float32"), reference[0].astype("float32"), rtol=2e-2, atol=2e-2
    )


def test_feature_cache_reads_rows_in_any_order(reference, tmp_path):
    ds = _copy(tmp_path)
    extract_features(ds, **SMALL)
    cache = FeatureCache.open(ds, NAME)
    rows = np.array([5, 1, 5, 0])
    np.testing.assert_array_equal(cache[rows], reference[0][rows])
    assert cache.rows[reference[1][3]] == 3
    cache.close()


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_rows_are_read_by_offset_unless_the_chunks_are_compressed(tmp_path, compression):
    rng = np.random.default_rng(0)
    grids = rng.random((9, 2, 2, 3)).astype("float16")
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=grids, chunks=(1, 2, 2, 3), compression=compression)
        f.create_dataset(
            "image_id",
            data=np.array([f"i{k}" for k in range(9)], dtype=object),
            dtype=h5py.string_dtype(),
        )
    cache = FeatureCache(path, manifest=None)
    assert (cache._offsets is not None) == (compression is None)  # the fast path or h5py
    rows = np.array([8, 0, 3, 3, 7])
    np.testing.assert_array_equal(cache[rows], grids[rows])
    cache.close()


def test_a_cache_cut_short_is_a_clear_error(tmp_path):
    grids = np.ones((4, 2, 2, 3), "float16")
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=grids, chunks=(1, 2, 2, 3))
        f.create_dataset(
            "image_id", data=np.array(list("abcd"), dtype=object), dtype=h5py.string_dtype()
        )
    cache = FeatureCache(path, manifest=None)
    last = int(cache._offsets.max())
    with open(path, "r+b") as f:
        f.truncate(last + 4)  # the last row loses most of its bytes
    with pytest.raises(FeatureCacheError, match="ends early"):
        cache[np.array([int(np.argmax(cache._offsets))])]
    cache.close()


def test_missing_cache_names_the_command(tmp_path):
    ds = _copy(tmp_path)
    with pytest.raises(FeatureCacheError, match="vqa extract"):
        FeatureCache.open(ds, NAME)


def test_each_input_size_has_its_own_cache(tmp_path):
    ds = _copy(tmp_path)
    path = extract_features(ds, image_size=224, **SMALL)
    assert path.name == f"{NAME}.h5"  # the backbone's own size: the plain name
    assert FeatureCache.open(ds, NAME, 224).shape == (12, 7, 7, 16)
    with pytest.raises(FeatureCacheError, match="--backbone-image-size 96"):
        FeatureCache.open(ds, NAME, 96)
    with pytest.raises(FeatureCacheError, match=f"{NAME}-64px features"):
        FeatureCache.open(ds, NAME)  # 0: the size that suits these images


def test_train_and_answer_on_cached_features(tmp_path):
    ds = _copy(tmp_path)
    config = Config(
        ModelConfig(
            image_encoder="pretrained",
            backbone=NAME,
            image_dim=16,
            embedding_dim=8,
            question_dim=16,
            max_question_length=8,
            fusion_dim=16,
            classifier_dim=16,
        ),
        TINY_CONFIG.train,
    )
    summary = train(ds, tmp_path / "run", config, verbose=0)  # extracts the cache first
    # backbone_image_size 0: the 48 px images are seen at 64 px (a 2x2 grid), and the run
    # records that size.
    assert feature_paths(ds, NAME, 64)[0].name == f"{NAME}-64px.h5"
    assert feature_paths(ds, NAME, 64)[0].is_file()
    assert not feature_paths(ds, NAME, 224)[0].exists()
    assert load_config(tmp_path / "run" / "config.yaml").model.backbone_image_size == 64
    assert summary["epochs_run"] == 2
    # The same seed gives the same run whether the cache had to be extracted first or not
    # (building the backbone draws random numbers; the model's own are drawn after that).
    train(ds, tmp_path / "again", config, verbose=0)
    first, again = (
        pd.read_csv(tmp_path / run / "history.csv").drop(columns="seconds")
        for run in ("run", "again")
    )
    pd.testing.assert_frame_equal(first, again)
    metrics = evaluate_run(tmp_path / "run", ds, "test")
    assert metrics["n_questions"] == len(ds.split("test"))
    answerer = Answerer.load(tmp_path / "run")
    result = answerer.answer(draw_shape("red", "circle", size=300), "what color is the shape?")
    assert 0 < result.probability <= 1
    # The answer from pixels uses the same network as the cache: same grid, same answer.
    image_id = ds.split("test")["image_id"].iloc[0]
    grid = answerer._grids(answerer.preprocessing.pixels(ds.image_path(image_id))[None])[0]
    cache = FeatureCache.open(ds, NAME, 64)
    assert grid.shape == cache.shape[1:] == (2, 2, 16)
    np.testing.assert_allclose(
        grid, cache[[cache.rows[image_id]]][0].astype("float32"), rtol=2e-2, atol=2e-2
    )
    # A pooled model has no attention: --explain draws its Grad-CAM over the 2x2 grid.
    image = draw_shape("red", "circle")
    cam = answerer.grad_cam(image, "what color is the shape?", result.answer)
    assert cam.shape == (2, 2) and (cam >= 0).all() and cam.sum() == pytest.approx(1)
    answerer.explain(image, "what color is the shape?", tmp_path / "why.png")
    assert (tmp_path / "why.png").stat().st_size > 10_000


def test_extract_command(tmp_path, capsys):
    ds = _copy(tmp_path)
    assert main(["extract", str(ds.root), "--backbone", NAME, "--batch-size", "4"]) == 0
    assert "features:" in capsys.readouterr().out
    assert main(["extract", str(ds.root), "--shard", "2"]) == 1
    assert "--shard must look like i/N" in capsys.readouterr().err


def test_fine_tune_trains_the_backbone_end_to_end(tmp_path):
    ds = _copy(tmp_path)
    config = Config(
        ModelConfig(
            image_encoder="pretrained",
            backbone=NAME,
            image_dim=16,
            embedding_dim=8,
            question_dim=16,
            max_question_length=8,
            fusion_dim=16,
            classifier_dim=16,
        ),
        TINY_CONFIG.train,
    ).with_train(epochs=1, fine_tune=True, batch_size=8, backbone_learning_rate=1e-4)
    summary = train(ds, tmp_path / "run", config, verbose=0)
    assert not (ds.root / "features").exists()  # no cache needed
    answerer = Answerer.load(tmp_path / "run")
    assert answerer.image_encoder is None  # the backbone is inside the model
    from vqa.features.backbones import get_backbone

    backbone = get_backbone(NAME).build()
    assert summary["parameters"] > backbone.count_params()  # backbone + head
    stem = backbone.get_layer(NAME).get_layer("conv0").get_weights()[0]
    tuned = answerer.model.get_layer(NAME).get_layer(NAME).get_layer("conv0")
    delta = np.abs(tuned.get_weights()[0] - stem).max()
    assert 0 < delta < 1e-3  # it moved, at the backbone's rate (4 steps of <= 1e-4), not 1e-3
    result = answerer.answer(
        ds.image_path(ds.split("test")["image_id"].iloc[0]), "what shape is in the image?"
    )
    assert 0 < result.probability <= 1
    assert evaluate_run(tmp_path / "run", ds, "test")["n_questions"] == len(ds.split("test"))


def test_evaluating_on_new_data_extracts_with_the_runs_weights(tmp_path):
    from vqa.config import TrainConfig

    weights = tmp_path / "other.weights.h5"
    other = tiny_cnn(input_shape=(64, 64, 3))
    other.get_layer("conv1").set_weights([w * 1.5 for w in other.get_layer("conv1").get_weights()])
    other.save_weights(weights)
    train_ds = make_tiny_dataset(tmp_path / "a" / "tiny")
    extract_features(train_ds, weights=weights, **SMALL)
    config = Config(
        ModelConfig(
            image_encoder="pretrained",
            backbone=NAME,
            image_dim=16,
            embedding_dim=8,
            question_dim=16,
            max_question_length=8,
            fusion_dim=16,
            classifier_dim=16,
        ),
        TrainConfig(epochs=1, batch_size=16),
    )
    train(train_ds, tmp_path / "run", config, verbose=0)
    other_ds = make_tiny_dataset(tmp_path / "b" / "tiny")  # no cache yet
    metrics = evaluate_run(tmp_path / "run", other_ds, "test")
    assert metrics["n_questions"] == len(other_ds.split("test"))
    h5, manifest_path, _ = feature_paths(other_ds, NAME)
    assert str(weights.resolve()) in manifest_path.read_text()


def test_a_shard_being_extracted_is_refused_to_a_second_process(tmp_path):
    import fcntl
    import os

    ds = _copy(tmp_path)
    h5, _, parts = feature_paths(ds, NAME, 64)
    lock = parts.parent / f".{h5.stem}.shard0of1.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)  # as the other process holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(
            FeatureCacheError, match="in use: another vqa process is extracting shard 0/1"
        ):
            extract_features(ds, **{**SMALL, "chunk_size": 4})
    finally:
        os.close(fd)  # the kernel drops it, as at any exit
    assert extract_features(ds, **SMALL) == h5 and h5.is_file()
