"""`vqa score` against the official VQA evaluator's own code, on a fixture made here.

    git clone https://github.com/GT-Vision-Lab/VQA /tmp/VQA
    python experiments/official_evaluator_check.py --official /tmp/VQA --work /tmp/check \
        [--questions 3000] [--seed 7]

Writes a VQA v2-format fixture under --work (a small train2014 and a val2014 of
--questions questions with ten human answers each, typed with the quirks people type:
case, trailing periods and spaces, number words, articles, "1,000", "t-shirt", "dont"),
plus a results file, each in an order of its own; prepares it with `vqa prepare vqa`; scores it with
`vqa score --json --evaluator E`; and scores it with the official PythonHelperTools and
vqaEval.py of the checkout: "2021" at its HEAD, "2017" at the commit before a013f00.
That code is Python 2: it is read from the checkout and run under this Python with
only its print statements made calls and its tabs expanded. Prints both sets of
figures and whether every one is equal (overall, per question type, per answer type);
exits 1 if any differs. Nothing of the official code is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import subprocess
import sys
import types
from pathlib import Path

from PIL import Image

EVAL_PATH = "PythonEvaluationTools/vqaEvaluation/vqaEval.py"
HELPER_PATH = "PythonHelperTools/vqaTools/vqa.py"
REVISIONS = {"2021": "HEAD", "2017": "a013f00^"}

POOLS = {
    "yes/no": ["yes", "no", "Yes", "yes.", "no ", "yes!", "YES", "Yes\n", "nope", "no."],
    "number": [
        "2",
        "two",
        "Two",
        "3",
        "three",
        "1,000",
        "1000",
        "2.5",
        "10",
        "ten",
        "none",
        "0",
        "one",
        "1",
        "a few",
        "2 ",
        "4.",
    ],
    "other": [
        "red",
        "Red",
        "the red one",
        "red one",
        "frisbee",
        "a frisbee",
        "Frisbee",
        "t-shirt",
        "t shirt",
        "man's hat",
        "mans hat",
        "dont know",
        "don't know",
        "black/white",
        "black and white",
        "black & white",
        "hot-dog",
        "hot dog",
        "blue;green",
        "10:30",
        "ok!",
        "(left)",
        "left",
        "tennis",
        "Tennis.",
        "kite",
        "a kite",
        "skateboarding",
        "grass",
        "the grass",
        "white",
        "White ",
    ],
}
QUESTION_TYPES = {
    "yes/no": ["is the", "are there", "is there a", "does the", "is this"],
    "number": ["how many", "what number is"],
    "other": ["what color is the", "what is the man", "which", "what", "what sport is"],
}


def write_fixture(root: Path, n_questions: int, seed: int) -> None:
    rng = random.Random(seed)
    for split, count, base in (("train2014", 60, 1), ("val2014", n_questions, 100000)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        n_images = max(1, count // 3)
        for k in range(n_images):
            Image.new("RGB", (32, 24), (k % 256, 40, 90)).save(
                folder / f"COCO_{split}_{base + k:012d}.jpg"
            )
        questions, annotations = [], []
        for i in range(count):
            qid, coco_id = base * 10 + i, base + i % n_images
            atype = rng.choice(sorted(POOLS))
            pool = POOLS[atype]
            agreement = rng.random()
            if agreement < 0.3:  # all ten typed alike
                answers = [rng.choice(pool)] * 10
            else:
                main = rng.choice(pool)
                answers = [
                    main if rng.random() < agreement else rng.choice(pool) for _ in range(10)
                ]
            qtype = rng.choice(QUESTION_TYPES[atype])
            questions.append(
                {"image_id": coco_id, "question_id": qid, "question": f"{qtype} thing {i}?"}
            )
            annotations.append(
                {
                    "question_id": qid,
                    "image_id": coco_id,
                    "question_type": qtype,
                    "answer_type": atype,
                    "multiple_choice_answer": max(sorted(set(answers)), key=answers.count),
                    "answers": [
                        {"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                        for j, a in enumerate(answers)
                    ],
                }
            )
        rng.shuffle(annotations)  # an order of its own: the evaluator sums in this one
        common = {
            "info": {"description": "fixture"},
            "data_type": "mscoco",
            "data_subtype": split,
            "license": {},
        }
        (root / f"v2_OpenEnded_mscoco_{split}_questions.json").write_text(
            json.dumps({**common, "task_type": "Open-Ended", "questions": questions})
        )
        (root / f"v2_mscoco_{split}_annotations.json").write_text(
            json.dumps({**common, "annotations": annotations})
        )
    results = [
        {
            "question_id": a["question_id"],
            "answer": rng.choice(
                [x["answer"] for x in a["answers"]] + POOLS[a["answer_type"]] + ["zzz"]
            ),
        }
        for a in annotations
    ]
    rng.shuffle(results)
    (root / "results.json").write_text(json.dumps(results))


def load_python2_module(
    checkout: Path, revision: str, path: str, name: str, extra: dict | None = None
) -> types.ModuleType:
    source = subprocess.run(
        ["git", "-C", str(checkout), "show", f"{revision}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    source = source.expandtabs(8)
    source = re.sub(r"^(\s*)print (.*)$", r"\1print(\2)", source, flags=re.M)
    module = types.ModuleType(name)
    module.__dict__.update(extra or {})
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def official_figures(checkout: Path, root: Path, evaluator: str) -> dict:
    revision = REVISIONS[evaluator]
    helper = load_python2_module(checkout, revision, HELPER_PATH, "vqa_helper")
    evaluation = load_python2_module(checkout, revision, EVAL_PATH, "vqa_eval")
    questions = str(root / "v2_OpenEnded_mscoco_val2014_questions.json")
    with contextlib.redirect_stdout(io.StringIO()):
        vqa = helper.VQA(str(root / "v2_mscoco_val2014_annotations.json"), questions)
        results = vqa.loadRes(str(root / "results.json"), questions)
        scorer = evaluation.VQAEval(vqa, results, n=2)
        scorer.evaluate()
    acc = scorer.accuracy
    return {
        "overall": acc["overall"],
        "per_question_type": dict(sorted(acc["perQuestionType"].items())),
        "per_answer_type": dict(sorted(acc["perAnswerType"].items())),
    }


def our_figures(root: Path, evaluator: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vqa.cli",
            "score",
            str(root / "prepared"),
            "--split",
            "val2014",
            "--results",
            str(root / "results.json"),
            "--json",
            "--evaluator",
            evaluator,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    metrics = json.loads(out)
    return {k: metrics[k] for k in ("overall", "per_question_type", "per_answer_type")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--official",
        type=Path,
        required=True,
        help="a git checkout of GT-Vision-Lab/VQA, with its history",
    )
    parser.add_argument("--work", type=Path, required=True, help="folder for the fixture")
    parser.add_argument("--questions", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_fixture(args.work, args.questions, args.seed)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "vqa.cli",
            "prepare",
            "vqa",
            "--root",
            str(args.work),
            "--out",
            str(args.work / "prepared"),
            "--overwrite",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    all_equal = True
    for evaluator in REVISIONS:
        official, ours = (
            official_figures(args.official, args.work, evaluator),
            our_figures(args.work, evaluator),
        )
        equal = official == ours
        all_equal &= equal
        print(
            f"evaluator {evaluator} (official code at {REVISIONS[evaluator]}): "
            f"{args.questions} questions, {len(official['per_question_type'])} question "
            f"types; every figure equal: {equal}"
        )
        for key in ("overall", "per_answer_type", "per_question_type"):
            print(f"  {key:<18} official {official[key]}")
            print(f"  {'':<18} vqa      {ours[key]}")
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
