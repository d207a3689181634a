import numpy as np
import pandas as pd

from vqa.data.batches import VQABatches, encode_targets
from vqa.data.text import Vocabulary


def test_encode_targets_are_sparse_vqa_scores():
    answers = Vocabulary(["yes", "no", "2"])
    targets = encode_targets(
        [["yes"], ["2"] * 3 + ["no"] * 7, ["maybe"], ["two"] * 3 + ["no"] * 7], answers
    )
    dense = targets.toarray()
    np.testing.assert_allclose(dense[0], [1, 0, 0])
    np.testing.assert_allclose(dense[1], [0, 1.0, 0.9], rtol=1e-6)
    np.testing.assert_allclose(dense[2], [0, 0, 0])  # out of vocabulary: no target
    # The humans disagree, so the evaluator maps their "two" to "2": it scores 0.9.
    np.testing.assert_allclose(dense[3], [0, 1.0, 0.9], rtol=1e-6)
    # Ten identical "two" are matched by "two" alone: "2" is no target.
    np.testing.assert_allclose(encode_targets([["two"] * 10], answers).toarray()[0], [0, 0, 0])


def test_batches_gather_each_question_with_its_image():
    images = np.arange(3)[:, None, None, None] * np.ones((3, 2, 2, 3), "uint8")
    questions = pd.DataFrame(
        {
            "image_id": ["c", "a", "a", "c", "b"],
            "question": ["is it", "it is", "is", "it", "is it is"],
        }
    )
    words = Vocabulary.for_questions(questions["question"])
    batches = VQABatches.from_questions(
        questions, images, {"a": 0, "b": 1, "c": 2}, words, max_length=3, batch_size=4
    )
    assert len(batches) == 2
    (x,) = batches[0]
    # One image per question (the same length in every full batch), in question order.
    assert x["image"][:, 0, 0, 0].tolist() == [2, 0, 0, 2]
    assert x["about_image"].dtype == np.int32 and x["about_image"].tolist() == [0, 1, 2, 3]
    assert x["question"].shape == (4, 3)
    (last,) = batches[1]
    assert last["image"][:, 0, 0, 0].tolist() == [1] and last["about_image"].tolist() == [0]
    # As models saved before about_image take them.
    old = VQABatches.from_questions(
        questions,
        images,
        {"a": 0, "b": 1, "c": 2},
        words,
        max_length=3,
        batch_size=4,
        about_image=False,
    )
    (x,) = old[0]
    assert set(x) == {"image", "question"} and x["image"][:, 0, 0, 0].tolist() == [2, 0, 0, 2]


def test_grouped_batches_keep_each_images_questions_together_in_a_new_order_each_epoch():
    index = np.repeat(np.arange(30), 10)  # 30 images, 10 questions each
    questions = np.arange(len(index), dtype="int32")[:, None]
    targets = encode_targets([["yes"]] * len(index), Vocabulary(["yes"]))
    images = np.arange(30)[:, None]
    grouped = VQABatches(
        images, index, questions, targets, batch_size=50, shuffle=True, seed=1, group_by_image=True
    )
    plain = VQABatches(images, index, questions, targets, batch_size=50, shuffle=True, seed=1)
    orders = []
    for _ in range(2):
        sizes = [len(grouped[i][0]["image"]) for i in range(len(grouped))]
        assert sizes == [5] * 6  # 50 questions of 5 whole images, each image once
        for i in range(len(grouped)):
            x = grouped[i][0]
            assert len(np.unique(x["image"][:, 0])) == 5
            np.testing.assert_array_equal(
                x["image"][x["about_image"], 0], index[x["question"][:, 0]]
            )
        assert {len(plain[i][0]["image"]) for i in range(len(plain))} == {50}
        seen = np.concatenate([grouped[i][0]["question"][:, 0] for i in range(len(grouped))])
        assert sorted(seen.tolist()) == list(range(len(index)))
        images_in_order = index[seen][::10]
        assert (index[seen].reshape(30, 10) == images_in_order[:, None]).all()
        orders.append(seen)
        for b in (grouped, plain):
            b.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1])
    # Within an image its questions are shuffled too, and a resumed epoch is the same.
    assert not np.array_equal(np.sort(orders[0][:10]), orders[0][:10])
    again = VQABatches(
        images, index, questions, targets, batch_size=50, shuffle=True, seed=1, group_by_image=True
    )
    again.start_epoch(1)
    np.testing.assert_array_equal(
        np.concatenate([again[i][0]["question"][:, 0] for i in range(len(again))]), orders[1]
    )


def test_questions_are_padded_to_the_longest_not_to_the_limit():
    words = Vocabulary.for_questions(["what color is it", "is it red"])
    tokens = words.encode_questions(["is it red", "what color is it"], max_length=14)
    assert tokens.shape == (2, 4)  # the longest question, not max_length
    assert tokens[0, 3] == 0 and (tokens[1] > 1).all()
    assert words.encode_questions(["what color is it"], max_length=2).shape == (1, 2)
    assert words.encode_questions([""], max_length=14).shape == (1, 1)
    assert words.encode_questions([], max_length=14).shape == (0, 1)


def test_shuffled_batches_cover_every_question_once_per_epoch():
    n = 10
    images = np.zeros((1, 2, 2, 3), "uint8")
    questions = np.arange(n, dtype="int32")[:, None]
    targets = encode_targets([["yes"]] * n, Vocabulary(["yes"]))
    batches = VQABatches(
        images, np.zeros(n, int), questions, targets, batch_size=4, shuffle=True, seed=3
    )
    for _ in range(2):
        seen = np.concatenate([batches[i][0]["question"][:, 0] for i in range(len(batches))])
        assert sorted(seen.tolist()) == list(range(n))
        batches.on_epoch_end()
