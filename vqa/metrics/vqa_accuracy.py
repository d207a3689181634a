"""The official VQA accuracy: answer normalisation, the leave-one-out score, rounding.

A port of the official evaluator (GT-Vision-Lab/VQA, PythonEvaluationTools/
vqaEvaluation/vqaEval.py), quirks included, so that our numbers equal its numbers on
the same results file. Two versions of its procedure are offered (`EVALUATORS`):

* "2021" (the default): master since commit a013f00 ("Fixed processing answers bug",
  2021-03-11). Every human answer and the prediction lose tabs, newlines and
  surrounding spaces; then, only when the human answers are not all identical, the
  punctuation step and the digit/article step are applied to every human answer and to
  the prediction. When all of them agree, nothing more is applied to either, so "Yes"
  scores 0 against ten "yes".
* "2017": the code before that commit (from 2016-10 on), which older papers were
  scored with. The prediction is always stripped and fully normalised; the human
  answers are never stripped and get the punctuation step only, and only when they
  are not all identical.

Both then score min(#other humans who match / 3, 1) over the leave-one-out subsets
and average them, and report percentages rounded to 2 decimals as Python 2 rounds
(halves away from zero), summing in order as Python 2 sums. Both share the evaluator's
tables: its punctuation list (no apostrophe or colon), number words, articles and
contractions. Python 2 quirks kept on purpose: `\\d` matches ASCII digits only, and the
period step removes at most 32 periods (the evaluator passes re.UNICODE, 32, where
`re.sub` takes its count).

The official formula gives 0 to a question with a single reference answer (no other
human is left to agree), so for those (easy-VQA, CLEVR, our generated scenes) we score
exact match after normalising both sides fully, under either evaluator.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

# The evaluator's contraction table (its straight apostrophes decide what matches).
_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')  # in the evaluator's order
# The official lookbehind is malformed ("(?!<=\d)"), so a period goes unless a digit
# follows it. re.ASCII: Python 2's \d, without re.UNICODE, is [0-9].
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)", re.ASCII)
_PERIOD_COUNT = 32  # re.UNICODE, passed by the evaluator where re.sub takes its count


@functools.lru_cache(maxsize=1 << 16)
def normalize_punctuation(text: str) -> str:
    """The evaluator's punctuation step: each mark is dropped when it touches a space
    (or when the text holds a digit-comma-digit), else replaced by a space; then
    periods not followed by a digit are dropped."""
    out = text
    drop_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in _PUNCTUATION:
        if drop_all or mark + " " in text or " " + mark in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_PERIOD_COUNT)


@functools.lru_cache(maxsize=1 << 16)
def normalize_digits_articles(text: str) -> str:
    """The evaluator's word step: lower-case, number words to digits, articles dropped,
    contractions restored ("dont" -> "don't")."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def strip_answer(text: str) -> str:
    """Tabs and newlines to spaces, surrounding white space removed."""
    return text.replace("\n", " ").replace("\t", " ").strip()


@functools.lru_cache(maxsize=1 << 16)
def normalize_answer(answer: str) -> str:
    """Every step: stripped, punctuation, then digits and articles. What the evaluators
    apply to a prediction they normalise, and what data_prep applies to answers."""
    return normalize_digits_articles(normalize_punctuation(strip_answer(answer)))


def single_form(text: str) -> str:
    """What a question with one reference answer compares: the normalised answer, or,
    for one the normalisation empties ("a", "?"), the answer stripped and lower-cased
    (data_prep labels it so)."""
    return normalize_answer(text) or strip_answer(text).lower()


def _full(text: str) -> str:
    return normalize_digits_articles(normalize_punctuation(text))


def _strip_then_full(text: str) -> str:
    return _full(strip_answer(text))


def _references_2021(humans: Sequence[str]) -> tuple[list[str], Callable[[str], str]]:
    refs = [strip_answer(h) for h in humans]
    if len(set(refs)) > 1:
        return [_full(h) for h in refs], _strip_then_full
    return refs, strip_answer


def _references_2017(humans: Sequence[str]) -> tuple[list[str], Callable[[str], str]]:
    refs = list(humans)
    if len(set(refs)) > 1:
        refs = [normalize_punctuation(h) for h in refs]
    return refs, normalize_answer


# Evaluator name -> the human answers as it compares them, and what it does to a
# prediction before comparing (which, from 2021, depends on whether the humans agree).
EVALUATORS: dict[str, Callable[[Sequence[str]], tuple[list[str], Callable[[str], str]]]] = {
    "2021": _references_2021,
    "2017": _references_2017,
}
DEFAULT_EVALUATOR = "2021"


def check_evaluator(evaluator: str) -> str:
    if evaluator not in EVALUATORS:
        raise ValueError(
            "Invalid value for argument evaluator. Expected one of "
            f"{sorted(EVALUATORS)}. Received: evaluator={evaluator!r}"
        )
    return evaluator


def _leave_one_out(refs: list[str], prediction: str) -> float:
    """Each human left out in turn: min(1, others who match / 3), summed in order."""
    matches = [ref == prediction for ref in refs]
    n_matching = sum(matches)
    total = 0.0
    for is_match in matches:
        total += min(1.0, (n_matching - is_match) / 3)
    return total / len(refs)


def vqa_accuracy(
    prediction: str, human_answers: Sequence[str], evaluator: str = DEFAULT_EVALUATOR
) -> float:
    """Accuracy in [0, 1] of one predicted answer against the human answers."""
    references = EVALUATORS[check_evaluator(evaluator)]
    if len(human_answers) == 0:
        raise ValueError("vqa_accuracy needs at least one reference answer.")
    if len(human_answers) == 1:
        return float(single_form(prediction) == single_form(human_answers[0]))
    refs, transform = references(human_answers)
    return _leave_one_out(refs, transform(prediction))


def answer_scores(
    human_answers: Sequence[str], evaluator: str = DEFAULT_EVALUATOR
) -> dict[str, float]:
    """Soft training target: the accuracy each candidate answer would get, for every
    candidate that scores above 0, so that a model is fitted to what it is judged on.

    The candidates are the human answers as typed (stripped) and fully normalised: under
    "2021" ten identical "two" are matched by "two" alone, under "2017" by nothing (its
    prediction is normalised to "2", their answers are not). A single reference answer
    gives its normalised form.
    """
    references = EVALUATORS[check_evaluator(evaluator)]
    if len(human_answers) == 1:
        answer = single_form(human_answers[0])
        return {answer: 1.0} if answer else {}
    refs, transform = references(human_answers)
    candidates = {strip_answer(a) for a in human_answers} | {
        normalize_answer(a) for a in human_answers
    }
    scores = {c: _leave_one_out(refs, transform(c)) for c in sorted(candidates) if c}
    return {c: v for c, v in scores.items() if v > 0}


class AnswerScorer:
    """The soft training targets of a fixed list of candidate answers (a model's answer
    vocabulary): for a question's human answers, the accuracy every candidate would get,
    `vqa_accuracy` exactly, without scoring each candidate one by one (the candidates are
    grouped by the form the evaluator compares).

        scorer = AnswerScorer(["2", "two", "yes"])
        scorer(["2"] * 6 + ["3"] * 4)   # {0: 1.0, 1: 1.0}: "two" is read as "2" here
    """

    def __init__(self, candidates: Sequence[str], evaluator: str = DEFAULT_EVALUATOR):
        self.references = EVALUATORS[check_evaluator(evaluator)]
        self.candidates = list(candidates)
        self._groups: dict[Callable[[str], str], dict[str, list[int]]] = {}

    def _group(self, transform: Callable[[str], str]) -> dict[str, list[int]]:
        if transform not in self._groups:
            groups: dict[str, list[int]] = {}
            for i, candidate in enumerate(self.candidates):
                groups.setdefault(transform(candidate), []).append(i)
            groups.pop("", None)  # an answer that normalises to nothing is no target
            self._groups[transform] = groups
        return self._groups[transform]

    def __call__(self, human_answers: Sequence[str]) -> dict[int, float]:
        """Candidate index -> accuracy, for every candidate that scores above 0."""
        if len(human_answers) == 1:
            indices = self._group(single_form).get(single_form(human_answers[0]), [])
            return dict.fromkeys(indices, 1.0)
        refs, transform = self.references(human_answers)
        groups, scores = self._group(transform), {}
        for form in set(refs):
            score = _leave_one_out(refs, form) if form in groups else 0.0
            if score > 0:
                scores.update(dict.fromkeys(groups[form], score))
        return scores


def best_answer(
    human_answers: Sequence[str], evaluator: str = DEFAULT_EVALUATOR, prefer: str | None = None
) -> str:
    """The label a classifier should learn: the answer that scores highest, or "" when
    none scores. Ties go to `prefer` (e.g. the annotated majority answer), then to
    normalised forms, then to the most often typed, then alphabetically."""
    scores = answer_scores(human_answers, evaluator)
    if not scores:
        return ""
    best = max(scores.values())
    if prefer and vqa_accuracy(prefer, human_answers, evaluator) == best:
        return prefer
    typed: dict[str, int] = {}
    for a in human_answers:
        for form in {strip_answer(a), normalize_answer(a)}:
            typed[form] = typed.get(form, 0) + 1
    return min(
        (c for c, v in scores.items() if v == best),
        key=lambda c: (c != normalize_answer(c), -typed.get(c, 0), c),
    )


def percent(values: Iterable[float]) -> float:
    """100 * mean, rounded to 2 decimals as the evaluator (Python 2) does: the sum in
    order, then halves rounded away from zero on the float's exact value."""
    total, count = 0.0, 0
    for value in values:
        total += value
        count += 1
    if count == 0:
        raise ValueError("percent of no values")
    exact = Decimal(100 * total / count)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
