"""The official VQA evaluator's procedure, ported to Python 3 for the tests.

Written from GT-Vision-Lab/VQA's PythonEvaluationTools/vqaEvaluation/vqaEval.py: at
master (commit a013f00, 2021-03-11, version "2021") and just before it (version "2017").
It works as that code does, not as vqa.metrics is written: on the raw annotation dicts,
mutating their answers in place, leaving one answer *dict* out at a time, appending each
question's mean to its type's list, and with Python 2's semantics where Python 3's
differ (round halves away from zero; `\\d` is ASCII; sum is plain left-to-right).
Only the contraction table is shared with vqa.metrics; a test pins it to the official
one by its hash.
"""

from __future__ import annotations

import copy
import math
import re
from fractions import Fraction

from vqa.metrics.vqa_accuracy import _CONTRACTIONS

MANUAL_MAP = {
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
ARTICLES = ["a", "an", "the"]
PUNCT = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)", re.ASCII)


def py2_round(x: float, n: int = 2) -> float:
    """Python 2's round(): the exact binary value, halves away from zero."""
    scaled = abs(Fraction(x)) * 10**n
    q = math.floor(scaled + Fraction(1, 2))
    return math.copysign(float(Fraction(q, 10**n)), x)


def py2_sum(values) -> float:
    total = 0
    for v in values:
        total = total + v
    return total


def process_punctuation(in_text: str) -> str:
    out_text = in_text
    for p in PUNCT:
        if (p + " " in in_text or " " + p in in_text) or (
            re.search(COMMA_STRIP, in_text) is not None
        ):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    # The official call passes re.UNICODE (32) in the position of `count`.
    return PERIOD_STRIP.sub("", out_text, 32)


def process_digit_article(in_text: str) -> str:
    out_text = []
    for word in in_text.lower().split():
        word = MANUAL_MAP.setdefault(word, word)
        if word not in ARTICLES:
            out_text.append(word)
    for i, word in enumerate(out_text):
        if word in _CONTRACTIONS:
            out_text[i] = _CONTRACTIONS[word]
    return " ".join(out_text)


def evaluate(annotations: list[dict], results: list[dict], version: str = "2021") -> dict:
    """`annotations` as in the official annotations file (each with ten answer dicts),
    `results` as in a results file. Returns overall, perQuestionType, perAnswerType."""
    gts = {a["question_id"]: copy.deepcopy(a) for a in annotations}
    res = {r["question_id"]: r for r in results}
    assert set(res) == set(gts)
    acc_qa, acc_ques_type, acc_ans_type = [], {}, {}
    for ques_id in [a["question_id"] for a in annotations]:  # vqa.getQuesIds(): its order
        gt = gts[ques_id]
        res_ans = res[ques_id]["answer"]
        if version == "2021":
            for ans_dic in gt["answers"]:
                ans_dic["answer"] = ans_dic["answer"].replace("\n", " ").replace("\t", " ")
                ans_dic["answer"] = ans_dic["answer"].strip()
            res_ans = res_ans.replace("\n", " ").replace("\t", " ").strip()
            if len(set(a["answer"] for a in gt["answers"])) > 1:
                for ans_dic in gt["answers"]:
                    ans_dic["answer"] = process_punctuation(ans_dic["answer"])
                    ans_dic["answer"] = process_digit_article(ans_dic["answer"])
                res_ans = process_digit_article(process_punctuation(res_ans))
        else:
            res_ans = res_ans.replace("\n", " ").replace("\t", " ").strip()
            res_ans = process_digit_article(process_punctuation(res_ans))
            if len(set(a["answer"] for a in gt["answers"])) > 1:
                for ans_dic in gt["answers"]:
                    ans_dic["answer"] = process_punctuation(ans_dic["answer"])
        gt_acc = []
        for gt_ans_datum in gt["answers"]:
            other = [item for item in gt["answers"] if item != gt_ans_datum]
            matching = [item for item in other if item["answer"] == res_ans]
            gt_acc.append(min(1, float(len(matching)) / 3))
        avg = float(py2_sum(gt_acc)) / len(gt_acc)
        acc_qa.append(avg)
        acc_ques_type.setdefault(gt["question_type"], []).append(avg)
        acc_ans_type.setdefault(gt["answer_type"], []).append(avg)

    def pct(values):
        return py2_round(100 * float(py2_sum(values)) / len(values), 2)

    return {
        "overall": pct(acc_qa),
        "perQuestionType": {k: pct(v) for k, v in acc_ques_type.items()},
        "perAnswerType": {k: pct(v) for k, v in acc_ans_type.items()},
    }
