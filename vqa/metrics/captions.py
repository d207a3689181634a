"""Caption scores as the COCO caption evaluation computes them: BLEU-1..4, ROUGE-L, CIDEr-D.

A reimplementation of pycocoevalcap (salaniz/pycocoevalcap 1.2, the Python 3 packaging of
tylin/coco-caption), quirks included, so that our figures equal its figures on the same
tokenized captions:

* BLEU (bleu/bleu_scorer.py, option "closest"): corpus level, so clipped n-gram matches,
  candidate n-grams and lengths are summed over all images before the ratios are taken;
  each reference length is the one closest to the hypothesis (the shorter on a tie);
  precisions carry its epsilons (matches + 1e-15) / (candidates + 1e-9), so a corpus with
  no 4-gram match gets a tiny BLEU-4 rather than 0.
* ROUGE-L (rouge/rouge.py): per image, the largest LCS precision and the largest LCS
  recall over the references (not necessarily the same one), F with beta = 1.2; the mean
  over images. Captions are split on single spaces as it splits them.
* CIDEr-D (cider/cider_scorer.py, which pycocoevalcap reports as "CIDEr"): tf-idf n-gram
  vectors (n = 1..4) whose document frequencies come from the references of the images
  being scored, hypothesis weights clipped at the reference's, a Gaussian length penalty
  (sigma = 6) and a factor 10; per image the mean over n of the mean over references;
  the mean over images. Its length is the number of bigrams, kept as it is.

Images are the keys of `hyps`, as COCOEvalCap scores the images of the results file;
`refs` may hold more images, which are ignored (CIDEr's document frequencies included).
Standard library and numpy only; METEOR, which needs Java, is borrowed from pycocoevalcap
when it can run (vqa.metrics.meteor).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from vqa.metrics.meteor import meteor_score

Refs = Mapping[Hashable, Sequence[str]]
Hyps = Mapping[Hashable, str]

# pycocoevalcap's PUNCTUATIONS: the tokens it drops after the PTB tokenizer. Its bracket
# tokens are upper case and the tokenizer lower-cases them first, so "-lrb-" survives.
PUNCTUATIONS = frozenset(
    [
        "''",
        "'",
        "``",
        "`",
        "-LRB-",
        "-RRB-",
        "-LCB-",
        "-RCB-",
        ".",
        "?",
        "!",
        ",",
        ":",
        "-",
        "--",
        "...",
        ";",
    ]
)
# BleuScorer's epsilons: a precision is (matches + TINY) / (candidates + SMALL).
_TINY, _SMALL = 1e-15, 1e-9

_CHARACTERS = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": " '' ",
        "\u201d": " '' ",
        "\u2014": " -- ",
        "\u2013": " -- ",
        "\u2026": " ... ",
        '"': " '' ",
        "`": " `` ",
        ";": " ; ",
        "$": " $ ",
        "%": " % ",
        "#": " # ",
        "*": " * ",
        "+": " + ",
        "=": " = ",
    }
)
# after _SPLITS, whose hyphen rule would cut these tokens
_BRACKETS = str.maketrans(
    {"(": " -lrb- ", ")": " -rrb- ", "[": " -lsb- ", "]": " -rsb- ", "{": " -lcb- ", "}": " -rcb- "}
)
_SPLITS = [
    (re.compile(r"\.{2,}"), " ... "),
    (re.compile(r"-{2,}"), " -- "),
    # a hyphen inside a word stays (t-shirt), as does a minus sign (-5)
    (re.compile(r"-+(?!\w)|(?<!\w)-+(?!\d)"), " - "),
    # ?! runs at a word's edge are tokens ("?!" and "!!" are not in PUNCTUATIONS)
    (re.compile(r"[?!]+(?!\w)|(?<!\w)[?!]+"), r" \g<0> "),
    # commas and colons between digits stay (1,000 and 10:30)
    (re.compile(r"(?<!\d)[,:]|[,:](?!\d)"), r" \g<0> "),
]
_CLITIC = re.compile(r"(.+?)(n't|'s|'m|'d|'ll|'re|'ve)")
_CLITICS = frozenset(["n't", "'s", "'m", "'d", "'ll", "'re", "'ve"])
_ASSIMILATIONS = {
    "cannot": ("can", "not"),
    "gonna": ("gon", "na"),
    "wanna": ("wan", "na"),
    "gotta": ("got", "ta"),
    "gimme": ("gim", "me"),
    "lemme": ("lem", "me"),
}
# Words whose final period the PTB tokenizer keeps; "no." and "fig." only before a number.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt ft jr sr vs etc inc co corp ltd bros gen gov sen rep rev capt lt "
    "col sgt ave rd blvd dept jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_INITIALS = re.compile(r"(?:[a-z]\.)+")


def tokenize(text: str) -> str:
    """Lower case, split and drop punctuation as pycocoevalcap's PTBTokenizer does
    (Stanford CoreNLP 3.4.1's PTBTokenizer with -lowerCase, then its PUNCTUATIONS removed).

    Matches the Java tokenizer on the usual caption text: sentence and clause punctuation
    removed; "don't" -> "do n't", "can't" -> "ca n't", "dog's" -> "dog 's", "I'm" -> "i 'm";
    "cannot" -> "can not", "gonna" -> "gon na"; brackets become "-lrb-", "-rsb-"... (kept,
    as in pycocoevalcap); "$", "%", "#", "*", "+", "=" split off; "t-shirt", "1,000",
    "10:30", "3.5", "cat/dog", "u.s.", "mr." and "a." kept whole.

    Known differences from the Java tokenizer: its full abbreviation and acronym rules
    (a short list is used here), case-dependent rules (it splits "a&b" but keeps "AT&T";
    "&" is never split here), words with a leading apostrophe ("'cause", "'em", "'tis"
    lose it here), "y'all", "rock'n'roll" and "they'd've", emoticons such as ":)", URLs
    and e-mail addresses with punctuation at their edge, HTML entities and tags, and
    Unicode symbols beyond curly quotes, dashes and the ellipsis.
    """
    text = " ".join(text.lower().translate(_CHARACTERS).split())
    for pattern, replacement in _SPLITS:
        text = pattern.sub(replacement, text)
    words = text.translate(_BRACKETS).split()
    tokens: list[str] = []
    for position, word in enumerate(words):
        following = words[position + 1] if position + 1 < len(words) else ""
        tokens.extend(_split_word(word, following))
    return " ".join(token for token in tokens if token not in PUNCTUATIONS)


def _split_word(word: str, following: str) -> list[str]:
    if word in _CLITICS or word in PUNCTUATIONS:
        return [word]
    word = word.strip("'")  # quotes around a word, or a plural possessive (dogs')
    if word.endswith(".") and not _keeps_period(word, following):
        word = word.rstrip(".")
    word = word.strip("'")
    clitics: list[str] = []
    while (match := _CLITIC.fullmatch(word)) is not None:  # shouldn't've: should n't 've
        word, clitics = match[1], [match[2], *clitics]
    head = list(_ASSIMILATIONS.get(word, (word,))) if word else []
    return head + clitics


def _keeps_period(word: str, following: str) -> bool:
    if word in ("no.", "fig."):
        return following[:1].isdigit()
    return word[:-1] in _ABBREVIATIONS or _INITIALS.fullmatch(word) is not None


def _pairs(refs: Refs, hyps: Hyps) -> list[tuple[str, list[str]]]:
    """(hypothesis, references) per image of `hyps`, checked, in its order."""
    if not hyps:
        raise ValueError("There are no hypotheses to score: hyps is empty.")
    missing = [key for key in hyps if key not in refs]
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) in hyps have no entry in refs, e.g. "
            f"{missing[0]!r}; score only images with reference captions."
        )
    pairs = []
    for key, hyp in hyps.items():
        references = refs[key]
        if not isinstance(hyp, str):
            raise ValueError(
                f"The hypothesis of image {key!r} must be one string. "
                f"Received: {type(hyp).__name__}."
            )
        if isinstance(references, str) or not all(isinstance(r, str) for r in references):
            raise ValueError(
                f"The references of image {key!r} must be a list of strings. "
                f"Received: {type(references).__name__}."
            )
        if len(references) == 0:
            raise ValueError(
                f"Image {key!r} has no reference captions; add them or leave the image out of hyps."
            )
        pairs.append((hyp, list(references)))
    return pairs


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Invalid value for argument n. Expected an int >= 1. Received: n={n!r}")


def _ngram_counts(words: Sequence[str], n: int) -> Counter:
    # 1-grams first, then 2-grams...: the order pycocoevalcap adds them (it sums in it)
    return Counter(
        tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1)
    )


def bleu(refs: Refs, hyps: Hyps, n: int = 4) -> list[float]:
    """Corpus BLEU-1..BLEU-n of whitespace-tokenized captions, as pycocoevalcap's Bleu."""
    _check_n(n)
    matches, candidates = [0] * n, [0] * n
    hyp_length = ref_length = 0
    for hyp, references in _pairs(refs, hyps):
        words = hyp.split()
        max_counts: dict[tuple[str, ...], int] = {}
        lengths = []
        for reference in references:
            ref_words = reference.split()
            lengths.append(len(ref_words))
            for gram, count in _ngram_counts(ref_words, n).items():
                max_counts[gram] = max(max_counts.get(gram, 0), count)
        ref_length += min(lengths, key=lambda length: (abs(length - len(words)), length))
        hyp_length += len(words)
        for gram, count in _ngram_counts(words, n).items():
            matches[len(gram) - 1] += min(count, max_counts.get(gram, 0))
        for k in range(n):
            candidates[k] += max(0, len(words) - k)
    scores, product = [], 1.0
    for k in range(n):  # the geometric mean of precisions 1..k+1
        product *= (matches[k] + _TINY) / (candidates[k] + _SMALL)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (hyp_length + _TINY) / (ref_length + _SMALL)
    if ratio < 1:  # brevity penalty
        scores = [score * math.exp(1 - 1 / ratio) for score in scores]
    return scores


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:  # one row of the dynamic programme at a time
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(
                previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1])
            )
        previous = current
    return previous[-1]


def rouge_l(refs: Refs, hyps: Hyps, beta: float = 1.2) -> float:
    """Mean over images of ROUGE-L F (max precision, max recall), as pycocoevalcap's Rouge."""
    scores = []
    for hyp, references in _pairs(refs, hyps):
        words = hyp.split(" ")  # not split(): "" is one empty token, as there
        lcs = [_lcs_length(r.split(" "), words) for r in references]
        precision = max(length / float(len(words)) for length in lcs)
        recall = max(length / float(len(r.split(" "))) for length, r in zip(lcs, references))
        if precision != 0 and recall != 0:
            scores.append(
                ((1 + beta**2) * precision * recall) / float(recall + beta**2 * precision)
            )
        else:
            scores.append(0.0)
    return float(np.mean(np.array(scores)))


def cider_d(refs: Refs, hyps: Hyps, n: int = 4, sigma: float = 6.0) -> float:
    """Mean over images of CIDEr-D, as pycocoevalcap's Cider (see the module docstring)."""
    _check_n(n)
    pairs = _pairs(refs, hyps)
    hyp_counts = [_ngram_counts(hyp.split(), n) for hyp, _ in pairs]
    ref_counts = [[_ngram_counts(r.split(), n) for r in references] for _, references in pairs]
    document_frequency: Counter = Counter()
    for counts in ref_counts:  # an image counts once per n-gram, over all its references
        document_frequency.update(set().union(*counts))
    log_images = np.log(float(len(pairs)))

    def vectorise(counts: Counter) -> tuple[list[dict], list[float], int]:
        vectors: list[dict] = [{} for _ in range(n)]
        squares = [0.0] * n
        for gram, count in counts.items():
            # an n-gram no reference has gets the idf of one that a single image has
            weight = float(count) * (log_images - np.log(max(1.0, document_frequency[gram])))
            vectors[len(gram) - 1][gram] = weight
            squares[len(gram) - 1] += weight**2
        length = sum(count for gram, count in counts.items() if len(gram) == 2)
        return vectors, [np.sqrt(s) for s in squares], length

    def similarity(hyp: tuple, ref: tuple) -> np.ndarray:
        (hyp_vectors, hyp_norms, hyp_length), (ref_vectors, ref_norms, ref_length) = hyp, ref
        delta = float(hyp_length - ref_length)
        values = np.zeros(n)
        for k in range(n):
            for gram, weight in hyp_vectors[k].items():
                ref_weight = ref_vectors[k].get(gram, 0.0)
                values[k] += min(weight, ref_weight) * ref_weight  # clipped: the "-D"
            if hyp_norms[k] != 0 and ref_norms[k] != 0:
                values[k] /= hyp_norms[k] * ref_norms[k]
            values[k] *= np.e ** (-(delta**2) / (2 * sigma**2))
        return values

    scores = []
    for counts, references in zip(hyp_counts, ref_counts):
        hyp = vectorise(counts)
        total = np.zeros(n)
        for reference in references:
            total += similarity(hyp, vectorise(reference))
        scores.append(np.mean(total) / len(references) * 10.0)
    return float(np.mean(np.array(scores)))


def score_captions(
    refs: Refs, hyps: Hyps, tokenized: bool = False, meteor: bool = True
) -> dict[str, float]:
    """BLEU-1..4, ROUGE-L and CIDEr-D of one hypothesis per image against its references.

    Args:
        refs: image key -> reference captions (one or more).
        hyps: image key -> the generated caption; its keys are the images scored.
        tokenized: captions are already tokenized (tokens joined by single spaces); when
            False, every caption goes through `tokenize` first.
        meteor: also METEOR where Java allows (its process takes seconds to start: one is
            started on first use and kept for the rest of this Python process).

    Returns {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"}, plus "METEOR"
    when a `java` executable is on PATH and pycocoevalcap is installed (its METEOR 1.5
    jar); otherwise, or when that Java process fails (a warning is logged), the key is
    absent. An empty hypothesis scores 0 on its image, as in pycocoevalcap.

    Raises ValueError, in one line, when hyps is empty, names an image refs lacks, or an
    image has no references (a leaf: vqa.metrics imports nothing from vqa, errors included).
    """
    _pairs(refs, hyps)
    if tokenized:
        refs = {key: list(refs[key]) for key in hyps}
    else:
        refs = {key: [tokenize(r) for r in refs[key]] for key in hyps}
        hyps = {key: tokenize(hyp) for key, hyp in hyps.items()}
    scores = {f"BLEU-{k}": score for k, score in enumerate(bleu(refs, hyps), start=1)}
    scores["ROUGE-L"] = rouge_l(refs, hyps)
    scores["CIDEr-D"] = cider_d(refs, hyps)
    found = meteor_score(refs, hyps) if meteor else None
    if found is not None:
        scores["METEOR"] = found
    return scores


def _ngrams(captions: Iterable[str], n: int) -> list[tuple[str, ...]]:
    _check_n(n)
    grams = []
    for caption in captions:
        words = caption.split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return grams


def distinct_ngrams(captions: Iterable[str], n: int = 2) -> int:
    """How many different n-grams a set of whitespace-tokenized captions uses."""
    return len(set(_ngrams(captions, n)))


def distinct_ngram_ratio(captions: Iterable[str], n: int = 2) -> float:
    """Distinct-n: different n-grams over all n-grams of the captions (0.0 when there are
    none); higher means more diverse, as sampling is compared with greedy decoding."""
    grams = _ngrams(captions, n)
    return len(set(grams)) / len(grams) if grams else 0.0
