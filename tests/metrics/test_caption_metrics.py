"""vqa.metrics.captions: hand-worked cases for each metric's rules, the tokenizer on
caption text, and every figure against pycocoevalcap itself (and its Java tokenizer) when
they are installed."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from vqa.metrics import meteor
from vqa.metrics.captions import (
    bleu,
    cider_d,
    distinct_ngram_ratio,
    distinct_ngrams,
    rouge_l,
    score_captions,
    tokenize,
)

LOG2 = math.log(2)


# --- BLEU -----------------------------------------------------------------------------


def test_bleu_1_clips_counts_at_the_reference_maximum():
    # The classic case: "the" x7 matches at most twice (the first reference has two).
    refs = {0: ["the cat is on the mat", "there is a cat on the mat"]}
    scores = bleu(refs, {0: "the the the the the the the"})
    assert scores[0] == pytest.approx(2 / 7, rel=1e-9)
    # No bigram matches: BLEU-2 is the epsilon's, tiny but not 0, as in BleuScorer.
    assert scores[1] == pytest.approx(math.sqrt(2 / 7 * 1e-15 / 6), rel=1e-6)


def test_brevity_penalty():
    # Both precisions are 1 (to the epsilons' 1e-9); hypothesis length 2, reference 6.
    scores = bleu({0: ["the cat sat on the mat"]}, {0: "the cat"})
    assert scores[:2] == pytest.approx([math.exp(1 - 6 / 2)] * 2, rel=1e-6)
    # No trigram to count: precision (0 + 1e-15) / (0 + 1e-9), BleuScorer's quirk.
    assert scores[2] == pytest.approx(math.exp(-2) * (1e-6) ** (1 / 3), rel=1e-6)


def test_closest_reference_length_takes_the_shorter_on_a_tie():
    # Lengths 3 and 5 are both 1 from 4; with 3 there is no penalty, with 5 there would be.
    scores = bleu({0: ["a b c", "a b c d e"]}, {0: "a b c d"})
    assert scores[0] == pytest.approx(1.0, rel=1e-9)


def test_bleu_is_corpus_level_not_a_mean_over_images():
    refs = {1: ["a b"], 2: ["w x y z"]}
    scores = bleu(refs, {1: "a b", 2: "c d e f"})
    assert scores[0] == pytest.approx(2 / 6, rel=1e-9)  # the mean of 1 and 0 would be 0.5


# --- ROUGE-L --------------------------------------------------------------------------


def test_rouge_l_weighs_recall_with_beta():
    # LCS "a b c": precision 3/3, recall 3/6.
    expected = (1 + 1.2**2) * 1.0 * 0.5 / (0.5 + 1.2**2 * 1.0)
    assert rouge_l({0: ["a x b y c z"]}, {0: "a b c"}) == pytest.approx(expected, rel=1e-12)


def test_rouge_l_takes_max_precision_and_max_recall_from_different_references():
    # "a b": precision 2/3, recall 1; "a b c d e f": precision 1, recall 1/2.
    assert rouge_l({0: ["a b", "a b c d e f"]}, {0: "a b c"}) == pytest.approx(1.0)


def test_rouge_l_is_the_mean_over_images():
    refs = {0: ["a b"], 1: ["c d"]}
    assert rouge_l(refs, {0: "a b", 1: "x y"}) == pytest.approx(0.5)


# --- CIDEr-D --------------------------------------------------------------------------


def test_cider_d_of_a_single_image_is_zero():
    # One image: log(1 image) - log(df 1) = 0, so every n-gram weighs nothing.
    assert cider_d({0: ["a cat on a mat"]}, {0: "a cat on a mat"}) == 0.0


def test_cider_d_hand_worked():
    # Two images. "a" is in both (weight 0); "cat", "a cat", "dog", "a dog" weigh log 2.
    # A perfect caption: cosine 1 for 1- and 2-grams, 0 for 3- and 4-grams (none),
    # so 10 * (1 + 1 + 0 + 0) / 4 = 5.
    refs = {1: ["a cat"], 2: ["a dog"]}
    assert cider_d(refs, {1: "a cat", 2: "a dog"}) == pytest.approx(5.0, rel=1e-12)
    # Clipping: "cat cat" has weight 2 log 2 on "cat", clipped at the reference's log 2:
    # log2 * log2 / (2 log2 * log2) = 1/2 for unigrams, 0 for "cat cat"; 10 * 0.5 / 4.
    assert cider_d(refs, {1: "cat cat", 2: "a dog"}) == pytest.approx((1.25 + 5) / 2)
    # Length penalty on the bigram count (0 against 1): exp(-1 / (2 * 6**2)).
    expected = (2.5 * math.exp(-1 / 72) + 5) / 2
    assert cider_d(refs, {1: "cat", 2: "a dog"}) == pytest.approx(expected, rel=1e-12)


def test_cider_d_document_frequencies_come_from_the_scored_images_only():
    refs = {1: ["a cat"], 2: ["a dog"], 3: ["a cat"]}  # image 3 has no hypothesis
    assert cider_d(refs, {1: "a cat", 2: "a dog"}) == pytest.approx(5.0)


# --- inputs ---------------------------------------------------------------------------


def test_empty_hypothesis_scores_zero_without_error(monkeypatch):
    monkeypatch.setattr(meteor.shutil, "which", lambda name: None)  # no METEOR
    refs = {0: ["a cat"], 1: ["a dog"]}
    scores = score_captions(refs, {0: "", 1: "a dog"}, tokenized=True)
    assert scores["ROUGE-L"] == pytest.approx(0.5)
    assert scores["CIDEr-D"] == pytest.approx(2.5)


@pytest.mark.parametrize(
    "refs, hyps, message",
    [
        ({0: ["a cat"]}, {1: "a cat"}, "have no entry in refs"),
        ({0: []}, {0: "a cat"}, "has no reference captions"),
        ({0: "a cat"}, {0: "a cat"}, "must be a list of strings"),
        ({0: ["a cat"]}, {0: ["a cat"]}, "must be one string"),
        ({0: ["a cat"]}, {}, "no hypotheses"),
    ],
)
def test_bad_inputs_raise_one_line(refs, hyps, message):
    for scorer in (bleu, rouge_l, cider_d, score_captions):
        with pytest.raises(ValueError, match=message) as caught:
            scorer(refs, hyps)
        assert "\n" not in str(caught.value)


def test_invalid_n():
    with pytest.raises(ValueError, match="Received: n=0"):
        bleu({0: ["a"]}, {0: "a"}, n=0)


# --- tokenizer ------------------------------------------------------------------------

# Outputs of pycocoevalcap's PTBTokenizer (CoreNLP 3.4.1) for these lines.
TOKENIZER_CASES = [
    ("A man riding a horse.", "a man riding a horse"),
    ("Don't stop, it's the dog's toy!", "do n't stop it 's the dog 's toy"),
    (
        "I can't believe they won't go; we cannot, gonna.",
        "i ca n't believe they wo n't go we can not gon na",
    ),
    (
        "Mr. Smith and Dr. Who in the U.S. at 3 p.m. today.",
        "mr. smith and dr. who in the u.s. at 3 p.m. today",
    ),
    (
        "He paid $5.50 for 50% of the 1,000 apples at 10:30.",
        "he paid $ 5.50 for 50 % of the 1,000 apples at 10:30",
    ),
    (
        "A t-shirt -- and a (red) [blue] thing...",
        "a t-shirt and a -lrb- red -rrb- -lsb- blue -rsb- thing",
    ),
    (
        "\"Hello,\" she said 'quietly' to the dogs' owner.",
        "hello she said quietly to the dogs owner",
    ),
    (
        "I'm sure you'll, we're, they've, he'd like it.",
        "i 'm sure you 'll we 're they 've he 'd like it",
    ),
    ("Wait... what?! No!!", "wait what ?! no !!"),
    ("There is no. 5 bus, there is no.", "there is no. 5 bus there is no"),
    ("It\u2019s a \u201cquoted\u201d thing \u2014 end\u2026", "it 's a quoted thing end"),
    ("Two men - one old - sit at -5 degrees.", "two men one old sit at -5 degrees"),
    ("A cat/dog on a bed #1 *star*", "a cat/dog on a bed # 1 * star *"),
    ("", ""),
]


@pytest.mark.parametrize("text, expected", TOKENIZER_CASES)
def test_tokenize(text, expected):
    assert tokenize(text) == expected


def _java_tokenizer():
    ptb = pytest.importorskip("pycocoevalcap.tokenizer.ptbtokenizer")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")
    if not (Path(ptb.__file__).parent / ptb.STANFORD_CORENLP_3_4_1_JAR).exists():
        pytest.skip("pycocoevalcap without its CoreNLP jar")
    return ptb.PTBTokenizer()


def test_tokenize_matches_the_java_tokenizer():
    sentences = [text for text, _ in TOKENIZER_CASES if text] + [
        "Two dogs playing with a frisbee in the park.",
        "A kitchen with a stove, sink and fridge.",
        "A baseball player swinging a bat at a ball .",
        "Several people are standing around; some are talking.",
        "A sign reads 'STOP' at the corner.",
        "a U.K. flag, 12-year-old",
        "A woman's purse and the kids' toys!!",
        "Is this a 3.5 inch disk? Yes.",
    ]
    java = _java_tokenizer().tokenize({i: [{"caption": s}] for i, s in enumerate(sentences)})
    assert [tokenize(s) for s in sentences] == [java[i][0] for i in range(len(sentences))]


def test_score_captions_tokenizes_unless_told_not_to(monkeypatch):
    monkeypatch.setattr(meteor.shutil, "which", lambda name: None)  # no METEOR
    refs = {0: ["A cat, on a mat."], 1: ["A dog."]}
    hyps = {0: "a cat on a mat", 1: "A dog!"}
    raw = score_captions(refs, hyps)
    assert set(raw) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"}
    assert raw == score_captions(
        {0: ["a cat on a mat"], 1: ["a dog"]}, {0: "a cat on a mat", 1: "a dog"}, tokenized=True
    )
    assert raw["ROUGE-L"] == pytest.approx(1.0)
    assert score_captions(refs, hyps, tokenized=True)["ROUGE-L"] < 1.0


# --- diversity ------------------------------------------------------------------------


def test_distinct_ngrams():
    caps = ["a b c", "a b d", "x"]
    assert distinct_ngrams(caps) == 3  # "a b" twice, "b c", "b d"
    assert distinct_ngram_ratio(caps) == pytest.approx(3 / 4)
    assert distinct_ngrams(caps, n=1) == 5
    assert distinct_ngram_ratio(["x"], n=2) == 0.0


# --- against pycocoevalcap ------------------------------------------------------------


def synthetic_captions(seed: int = 0, images: int = 50):
    """Five references per image from a small vocabulary; a third of the hypotheses copy
    a reference, one is empty, the rest are random, so every n-gram order has matches."""
    rng = np.random.RandomState(seed)
    vocab = "a the man woman dog cat on in with red blue sitting riding table street of".split()

    def caption():
        return " ".join(rng.choice(vocab, rng.randint(1, 13)))

    refs = {f"img{i}": [caption() for _ in range(5)] for i in range(images)}
    hyps = {key: refs[key][i % 5] if i % 3 == 0 else caption() for i, key in enumerate(refs)}
    hyps[f"img{7 % images}"] = ""
    return refs, hyps


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_pycocoevalcap(seed):
    pytest.importorskip("pycocoevalcap.bleu.bleu")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    refs, hyps = synthetic_captions(seed)
    res = {key: [hyp] for key, hyp in hyps.items()}
    expected = list(Bleu(4).compute_score(refs, res, verbose=0)[0])
    expected += [Rouge().compute_score(refs, res)[0], Cider().compute_score(refs, res)[0]]
    ours = bleu(refs, hyps) + [rouge_l(refs, hyps), cider_d(refs, hyps)]
    # The port repeats pycocoevalcap's arithmetic, so it agrees far past 4 decimals.
    assert ours == pytest.approx(expected, abs=1e-12)
    assert expected[3] > 0.1 and expected[5] > 0.1  # the case exercises every n


def _needs_meteor() -> None:
    """Skip unless METEOR can run here: pycocoevalcap's jar and a java on PATH."""
    pytest.importorskip("pycocoevalcap.meteor.meteor")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH")


def test_meteor_only_with_java_and_pycocoevalcap():
    _needs_meteor()
    refs, hyps = synthetic_captions(0, images=5)
    scores = score_captions(refs, hyps, tokenized=True)
    assert 0.0 < scores["METEOR"] <= 1.0


def test_one_meteor_process_serves_every_scoring_and_one_that_ended_is_replaced(
    monkeypatch, caplog
):
    """The Java process takes seconds to start: it is started once and kept, started
    again if it ended, and a scoring that fails midway ends it (its lock released)."""
    _needs_meteor()
    refs, hyps = synthetic_captions(1, images=4)
    first = score_captions(refs, hyps, tokenized=True)["METEOR"]
    scorer = meteor._meteor_scorer
    assert score_captions(refs, hyps, tokenized=True)["METEOR"] == first
    assert meteor._meteor_scorer is scorer  # the same Java process
    scorer.meteor_p.kill()
    scorer.meteor_p.wait()
    assert score_captions(refs, hyps, tokenized=True)["METEOR"] == first  # started again
    scorer = meteor._meteor_scorer
    assert scorer.meteor_p.poll() is None

    def garbled(self, hypothesis, references):
        raise ValueError("garbled output")  # inside compute_score, its lock held

    monkeypatch.setattr(type(scorer), "_stat", garbled)
    assert "METEOR" not in score_captions(refs, hyps, tokenized=True)
    assert "METEOR left out" in caplog.text and "garbled output" in caplog.text
    assert meteor._meteor_scorer is None
    assert scorer.meteor_p.poll() is not None and not scorer.lock.locked()
