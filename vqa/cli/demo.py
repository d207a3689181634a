"""`vqa demo`: prepare easy-VQA, extract its features, train the default model, evaluate
it on the test split and answer two questions, end to end, telling each step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vqa.runs import files


def run_demo(
    out: str | Path = "vqa-demo", epochs: int | None = None, echo: Callable[[str], None] = print
) -> Path:
    """Run the five steps into `out` (data in out/easy-vqa, the run in out/run), telling
    each through `echo`; steps already done are not done again. Returns the run."""
    from data_prep.common import report
    from data_prep.easy_vqa import prepare
    from vqa.answering import Answerer, format_answer
    from vqa.config import Config
    from vqa.data.dataset import PreparedDataset
    from vqa.errors import DatasetError
    from vqa.evaluation import evaluate_run, format_metrics
    from vqa.export import write_run_bundle
    from vqa.features.extract import extract_features
    from vqa.training import train

    out = Path(out)
    data_dir, run = out / "easy-vqa", out / "run"
    config = Config() if epochs is None else Config().with_train(epochs=epochs)
    echo(f"1/5 prepare easy-VQA -> {data_dir}")
    try:
        dataset = PreparedDataset.load(data_dir)
        echo("    already prepared")
    except DatasetError:
        dataset = prepare(data_dir, overwrite=True)
    echo(report(dataset))

    model = config.for_dataset(dataset).model
    echo(
        f"2/5 extract {model.backbone} (ImageNet) grid features of every image at "
        f"{model.backbone_image_size} px, once"
    )
    echo(f"    {extract_features(dataset, model.backbone, image_size=model.backbone_image_size)}")

    echo(f"3/5 train the default model on the cached features -> {run}")
    if (run / files.TRAINING).is_file():
        echo("    already trained; delete the run directory to train again")
    else:
        summary = train(dataset, run, config)
        echo(
            f"    best epoch {summary['best_epoch']}: validation accuracy "
            f"{summary['best_val_vqa_score']:.2f}%, {summary['seconds_per_epoch']:.1f} s/epoch"
        )
        if write_run_bundle(run):
            echo(f"    and {run / files.FAST_BUNDLE}: `vqa ask` answers from it in about a second")

    echo("4/5 evaluate on the test split (official VQA accuracy)")
    echo(format_metrics(evaluate_run(run, dataset, "test")))

    echo("5/5 ask questions about a test image")
    test = dataset.split("test")
    image_id = test["image_id"].iloc[0]
    answerer = Answerer.load(run)
    echo(f"    image: {dataset.image_path(image_id)}")
    for _, row in test[test["image_id"] == image_id].head(2).iterrows():
        result = answerer.answer(dataset.image_path(image_id), row["question"])
        echo(_indent(format_answer(result)) + f"\n    (true answer: {row['answer']})")
    echo(
        f"\nTry it yourself:\n    vqa ask {run} {dataset.image_path(image_id)} "
        '"what shape is in the image?"'
    )
    return run


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
