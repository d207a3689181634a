"""experiments/probes/word_probe.py: does a run read a word of its questions?"""

import shutil
import sys

import keras
import pytest
from conftest import ROOT

from vqa.data.text import Vocabulary
from vqa.runs import files

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from word_probe import main, probe, vector_share  # noqa: E402

TEMPLATE = "is there a {} shape?"


def test_probe_measures_the_run(tiny_dataset, tiny_run, capsys):
    run, _ = tiny_run
    result = probe(run, tiny_dataset, TEMPLATE, ["red", "blue"], n_images=4)
    assert result["images"] == 4
    assert 0 <= result["same_answer_for_every_word"] <= 1
    assert result["question_vector_share"] > 0 and result["question_vector_share_at_init"] > 0
    own = tiny_dataset.split("test")
    assert (
        result["questions_in_split"]
        == own["question"].isin([TEMPLATE.format("red"), TEMPLATE.format("blue")]).sum()
        > 0
    )
    assert 0 <= result["accuracy"] <= 100
    assert (
        main(
            [
                str(run),
                str(tiny_dataset.root),
                "--template",
                TEMPLATE,
                "--words",
                "red, blue",
                "--images",
                "2",
            ]
        )
        == 0
    )
    assert "question-vector share" in capsys.readouterr().out


def test_a_run_that_cannot_tell_two_words_apart_reads_zero(tiny_dataset, tiny_run, tmp_path):
    run = shutil.copytree(tiny_run[0], tmp_path / "run")
    model = keras.models.load_model(run / files.MODEL, compile=False)
    embedding = model.get_layer("question_encoder").get_layer("word_embedding")
    words = Vocabulary.load(run / files.QUESTION_VOCAB)
    table = embedding.get_weights()[0]
    table[words.tokens.index("blue")] = table[words.tokens.index("red")]
    embedding.set_weights([table])
    model.save(run / files.MODEL)
    result = probe(run, tiny_dataset, TEMPLATE, ["red", "blue"], n_images=4)
    assert result["question_vector_share"] == pytest.approx(0, abs=1e-6)
    assert result["same_answer_for_every_word"] == 1.0
    assert result["question_vector_share_at_init"] > 0.01  # a fresh model still can


@pytest.mark.parametrize(
    "template, words, match",
    [
        ("is there a shape?", ["red", "blue"], "one {}"),
        (TEMPLATE, ["red"], "at least two words"),
        (TEMPLATE, ["red", "mauve"], r"never seen the words \['mauve'\]"),
    ],
)
def test_probe_errors(tiny_dataset, tiny_run, template, words, match):
    with pytest.raises(ValueError, match=match):
        probe(tiny_run[0], tiny_dataset, template, words)


def test_vector_share_reads_the_question_vector_of_a_word_attention_model():
    from conftest import SMALL_MODEL

    from vqa.config import ModelConfig
    from vqa.models import build_model
    from vqa.training import copy_weights

    sizes = dict(SMALL_MODEL, image_encoder="small_cnn", attention_hops=1)
    plain = build_model(ModelConfig(**sizes), vocab_size=12, num_answers=3)
    words = build_model(ModelConfig(**sizes, attention_words=True), vocab_size=12, num_answers=3)
    copy_weights(plain, words)
    questions = ["a b", "a b c d", "e", "d c"]
    vocab = Vocabulary.for_questions(questions)
    share = vector_share(words, vocab, questions, 6)
    assert share == pytest.approx(vector_share(plain, vocab, questions, 6), rel=1e-5)
    assert share > 0
    embeddings = build_model(
        ModelConfig(**sizes, attention_words=True, attention_word_embeddings=True), 12, 3
    )
    copy_weights(plain, embeddings)  # its encoder also gives the embeddings: not read here
    assert vector_share(embeddings, vocab, questions, 6) == pytest.approx(share, rel=1e-5)
