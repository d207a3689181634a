"""How much a dataset can be answered without looking at the image.

For generated datasets we promise balance: within each question family, a model that
sees only the question does no better than always giving the family's most frequent
answer. `question_only_table` measures it with a model that is strong on short
templated text: logistic regression on word 1- to 3-grams, one per family, fitted on
the training split and scored on the test split.
"""

from __future__ import annotations

import pandas as pd


def question_only_table(
    questions: pd.DataFrame, family: str = "question_type", train: str = "train", test: str = "test"
) -> pd.DataFrame:
    """Per family: test questions, majority-answer rate and question-only accuracy (%).

    The majority answer is the family's most frequent *training* answer, scored on the
    test split; `gap` is question-only accuracy minus that rate, in points.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = []
    for name, group in questions.groupby(family, sort=True):
        fit, held = group[group["split"] == train], group[group["split"] == test]
        if fit.empty or held.empty:
            continue
        majority = fit["answer"].value_counts().index[0]
        majority_rate = 100 * (held["answer"] == majority).mean()
        if fit["answer"].nunique() == 1:
            accuracy = majority_rate
        else:
            vectorizer = CountVectorizer(ngram_range=(1, 3), token_pattern=r"[^\s?.,]+")
            model = LogisticRegression(max_iter=2000, C=1.0)
            model.fit(vectorizer.fit_transform(fit["question"]), fit["answer"])
            predicted = model.predict(vectorizer.transform(held["question"]))
            accuracy = 100 * (predicted == held["answer"].to_numpy()).mean()
        rows.append(
            {
                "family": name,
                "n_test": len(held),
                "majority_rate": majority_rate,
                "question_only": accuracy,
                "gap": accuracy - majority_rate,
            }
        )
    return pd.DataFrame(rows, columns=["family", "n_test", "majority_rate", "question_only", "gap"])


def format_table(table: pd.DataFrame) -> str:
    lines = [f"  {'family':<24} {'test q':>7} {'majority':>9} {'question-only':>14} {'gap':>6}"]
    lines += [
        f"  {r.family:<24} {r.n_test:>7} {r.majority_rate:>8.1f}% "
        f"{r.question_only:>13.1f}% {r.gap:>+6.1f}"
        for r in table.itertuples()
    ]
    return "\n".join(lines)
