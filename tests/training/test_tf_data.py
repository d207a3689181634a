import numpy as np
import pytest
from scipy import sparse

from vqa.data.batches import VQABatches
from vqa.training.tf_data import gathered_in_tf


def _batches(**kwargs):
    rng = np.random.default_rng(0)
    index = np.repeat(np.arange(30), 7)  # 30 images, 7 questions each
    images = rng.integers(0, 255, (30, 4, 4, 3)).astype("uint8")
    questions = rng.integers(1, 9, (len(index), 5)).astype("int32")
    targets = sparse.random(
        len(index), 6, density=0.3, format="csr", random_state=1, dtype="float32"
    )
    return VQABatches(images, index, questions, targets, batch_size=16, seed=3, **kwargs)


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_tf_data_gives_the_batches_of_the_python_dataset_epoch_after_epoch(grouped, shuffle):
    expected = _batches(shuffle=shuffle, group_by_image=grouped)
    source = _batches(shuffle=shuffle, group_by_image=grouped)
    expected.start_epoch(2)  # as a run resumed at its third epoch
    source.start_epoch(2)
    dataset = gathered_in_tf(source)
    orders = []
    for _ in range(2):
        got = list(dataset)
        orders.append(np.concatenate([x["question"].numpy() for x, _ in got]))
        assert len(got) == len(expected)
        for i, (x, y) in enumerate(got):
            want_x, want_y = expected[i]
            assert set(x) == set(want_x)
            for key in want_x:
                np.testing.assert_array_equal(x[key].numpy(), want_x[key])
            np.testing.assert_allclose(y.numpy(), want_y)
        expected.on_epoch_end()
    assert np.array_equal(*orders) != shuffle  # a new order each epoch, when shuffled


def test_tf_data_is_only_for_in_memory_images_with_targets():
    batches = _batches()
    assert (
        gathered_in_tf(VQABatches(batches.images, batches.image_index, batches.questions)) is None
    )  # prediction
    assert (
        gathered_in_tf(
            VQABatches(
                list(batches.images), batches.image_index, batches.questions, batches.targets
            )
        )
        is None
    )
