"""A prepared dataset holding some question families of another, its images read in place.

    python experiments/probes/family_subset.py DATA OUT "compare attribute" ["query attribute" ...]

Can a model learn a family at all, on its own, or only not beside the others? Training
on OUT (`vqa train OUT ...`) answers that on validation. OUT keeps DATA's images where
they are (an absolute image_root) and every split, each with only the questions whose
question_type is one of the families, and the images those questions are about.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_prep.common import write_prepared  # noqa: E402
from vqa.data.dataset import PreparedDataset  # noqa: E402


def family_subset(data: Path, out: Path, families: list[str]) -> PreparedDataset:
    dataset = PreparedDataset.load(data)
    known = set(dataset.questions["question_type"])
    unknown = [f for f in families if f not in known]
    if unknown:
        raise ValueError(f"{data} has no question type {unknown}; it has {sorted(known)}")
    questions = dataset.questions[dataset.questions["question_type"].isin(families)]
    images = dataset.images.reset_index()
    images = images[images["image_id"].isin(questions["image_id"])]
    return write_prepared(
        out,
        name=f"{dataset.name}-subset",
        source=f"{dataset.meta['source']}; only {', '.join(families)}",
        questions=questions.reset_index(drop=True),
        images=images[["image_id", "path", "width", "height"]],
        image_root=dataset.image_root.resolve(),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    subset = family_subset(Path(args[0]), Path(args[1]), args[2:])
    print(f"{subset.root}: {len(subset.questions)} questions of {len(subset.images)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
