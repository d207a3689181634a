"""The `vqa` command: prepare | extract | train | evaluate | score | ask | caption | export |
serve | compare | classify | demo.

Heavy imports (TensorFlow through Keras) happen inside the commands that need them,
so `vqa --help` and `vqa score` start quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from vqa.cli import caption as cli_caption
from vqa.cli.answer import cmd_ask, cmd_export, cmd_serve
from vqa.cli.data import cmd_classify, cmd_extract, cmd_prepare, prepare_sources
from vqa.cli.help import EXAMPLES, HelpFormatter, show_every_default
from vqa.cli.train import cmd_compare, cmd_demo, cmd_evaluate, cmd_score, cmd_train
from vqa.errors import VQAError


def _add_evaluator_argument(parser: argparse.ArgumentParser) -> None:
    from vqa.metrics import DEFAULT_EVALUATOR, EVALUATORS

    parser.add_argument(
        "--evaluator",
        choices=sorted(EVALUATORS),
        default=DEFAULT_EVALUATOR,
        help="version of the official VQA evaluator to follow: 2021, its "
        "current code (default), or 2017, the code before its March "
        "2021 fix, which older papers were scored with",
    )


def build_parser() -> argparse.ArgumentParser:
    from vqa.config import ModelConfig, TrainConfig

    default_backbone = ModelConfig.backbone  # the config's default is the only one
    parser = argparse.ArgumentParser(
        prog="vqa", description="Visual question answering with Keras."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="write a prepared dataset from a source")
    sources = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, module in prepare_sources().items():
        q = sources.add_parser(
            name,
            help=module.__doc__.strip().splitlines()[0],
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(q)
        q.set_defaults(func=cmd_prepare, source_module=module)

    p = sub.add_parser("train", help="train a model on a prepared dataset")
    p.add_argument("data", help="prepared dataset directory")
    p.add_argument(
        "--config",
        help="YAML config (default: the built-in one; its train section: batch_size "
        f"{TrainConfig.batch_size}, learning_rate {TrainConfig.learning_rate}, "
        f"early_stopping_patience {TrainConfig.early_stopping_patience}; "
        "docs/configuration.md lists every key)",
    )
    p.add_argument("--out", required=True, help="run directory to create (or resume)")
    p.add_argument(
        "--epochs", type=int, help=f"override train.epochs (default: {TrainConfig.epochs})"
    )
    p.add_argument("--seed", type=int, help=f"override train.seed (default: {TrainConfig.seed})")
    p.add_argument(
        "--fine-tune",
        action="store_true",
        help="train the pretrained backbone too, end to end from pixels "
        "(train.backbone_learning_rate)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run")
    p.add_argument(
        "--strategy",
        default="none",
        choices=["none", "mirrored", "multi-worker", "data-parallel"],
        help="spread each batch over devices: mirrored (TensorFlow, this "
        "machine; VQA_CPU_DEVICES=N splits a CPU), multi-worker "
        "(TensorFlow, the machines in TF_CONFIG), data-parallel (JAX, "
        "this machine); train.batch_size is the global batch",
    )
    p.add_argument(
        "--init-from",
        metavar="RUN",
        help="start from the weights and vocabularies of the finished run RUN "
        "(same model config; a fresh optimizer): to train it on for more "
        "epochs, or on other data",
    )
    p.add_argument(
        "--no-bundle",
        action="store_true",
        help="do not export RUN_DIR/bundle when training ends (a few seconds; `vqa ask` "
        "writes it on its first answer): for sweeps and scripts that do not ask",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run in --out from its last finished epoch "
        "(an error if there is none; without the flag an unfinished run "
        "is resumed too)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="answer a split with a run and score it (a captioning run: caption its images)",
    )
    p.add_argument("run_dir")
    p.add_argument("data", help="prepared dataset directory")
    p.add_argument("--split", default="test")
    p.add_argument("--json", action="store_true", help="print metrics.json instead of a table")
    _add_evaluator_argument(p)
    cli_caption.add_decoding_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "score",
        help="score a results file in the official VQA format, or "
        "captions in COCO's (BLEU, ROUGE-L, CIDEr-D)",
    )
    p.add_argument("data", help="prepared dataset directory")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--results",
        required=True,
        help='JSON [{"question_id": int, "answer": '
        'str}], or captions [{"image_id", "caption": str}]',
    )
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    _add_evaluator_argument(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("ask", help="answer a question about an image (or a CSV of them)")
    p.add_argument("run_dir", help="a run directory, or a bundle from vqa export")
    p.add_argument("image", nargs="?", help="image file")
    p.add_argument("question", nargs="?")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument(
        "--explain",
        metavar="PNG",
        help="also write the image with where the model looked (each hop), and the answers",
    )
    p.add_argument(
        "--batch",
        metavar="CSV",
        help="answer every row of a CSV with columns image (a path relative to "
        "the CSV's folder) and question",
    )
    p.add_argument(
        "--out", default="answers.csv", help="--batch: where the answers go (default: answers.csv)"
    )
    p.set_defaults(func=cmd_ask)

    cli_caption.add_parser(sub)

    p = sub.add_parser(
        "export",
        help="write a run as an ONNX (or SavedModel, LiteRT) "
        "bundle that answers without TensorFlow",
    )
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="the bundle's folder")
    p.add_argument("--format", default="onnx", choices=("onnx", "saved_model", "litert"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing BUNDLE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="a web page to try a run or a bundle, and a JSON API")
    p.add_argument("run_dir", help="a run directory, or a bundle from vqa export")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument(
        "--max-batch", type=int, default=32, help="requests answered in one model call, at most"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=2.0,
        help="how long a request waits for others to share its model call",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="requests that may wait; one more is answered 503",
    )
    p.add_argument(
        "--caption",
        metavar="CAPTION_RUN",
        help="a captioning run: each answer also shows the image's caption, "
        "and POST /api/caption describes an image",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "compare", help="train and evaluate variants side by side, write a table and plots"
    )
    p.add_argument("data", help="prepared dataset directory")
    p.add_argument("configs", nargs="+", help="one YAML config per variant (named after the file)")
    p.add_argument("--runs", default="runs", help="run directories go in RUNS/<dataset>/<variant>")
    p.add_argument(
        "--results",
        help="where table.csv, README.md (the table) and the PNGs "
        "go (default: experiments/results/<dataset>)",
    )
    p.add_argument(
        "--split",
        help="split to evaluate on (default: test, else the first annotated split not trained on)",
    )
    p.add_argument("--epochs", type=int, help="override train.epochs of every variant")
    p.add_argument(
        "--seeds",
        help="train each variant once per seed, e.g. 0,1,2; the "
        "table gives the mean and standard deviation",
    )
    p.add_argument("--force", action="store_true", help="retrain variants that are already done")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("extract", help="compute a backbone's grid features of every image, once")
    p.add_argument("data", help="prepared dataset directory")
    p.add_argument(
        "--backbone",
        default=default_backbone,
        help="the pretrained CNN: a backbone registered in vqa.features.backbones",
    )
    p.add_argument("--weights", help="local weights file instead of the default ImageNet ones")
    p.add_argument(
        "--backbone-image-size",
        "--image-size",
        dest="image_size",
        type=int,
        default=0,
        help="input size of the backbone, a multiple of 32, as a config's "
        "model.backbone_image_size (default 0: what suits this dataset's "
        "images); --image-size is its old name",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per forward pass (default: 32 at 224 px, more at smaller sizes)",
    )
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--shard", default="0/1", help="i/N: compute every N-th chunk from i")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("classify", help="top ImageNet classes of an image (backbone check)")
    p.add_argument("image")
    p.add_argument(
        "--backbone",
        default=default_backbone,
        help="the pretrained CNN: a backbone registered in vqa.features.backbones",
    )
    p.add_argument("--weights", help="local weights file instead of the default ImageNet ones")
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("demo", help="prepare easy-VQA, train, evaluate and answer, end to end")
    p.add_argument("--out", default="vqa-demo", help="where the data and the run go")
    p.add_argument(
        "--epochs", type=int, help="train for fewer epochs than the default (quick look)"
    )
    p.set_defaults(func=cmd_demo)
    for name, command in sub.choices.items():
        command.formatter_class = HelpFormatter
        command.epilog = f"example:\n  {EXAMPLES[name]}"
    show_every_default(parser)
    return parser


PLUGINS_ENV = "VQA_PLUGINS"


def load_plugins() -> None:
    """Import the modules $VQA_PLUGINS names (comma-separated; installed, or on
    PYTHONPATH), so that the components they register (image encoders, fusions,
    recurrent units, attentions, decoders, backbones) are every command's, as vqa's own
    are. Each command imports them, so a plugin that imports Keras makes even `vqa ask`
    on a bundle load TensorFlow."""
    from vqa.startup import import_quietly

    for name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            import_quietly(name)
        except Exception as exc:  # a missing module, or one that fails as it registers
            raise VQAError(
                f"{PLUGINS_ENV} names {name!r}, which cannot be imported: {exc}"
            ) from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "ask" and not any(e.startswith("-") for e in extra):
            words = " ".join(w for w in (args.question, *extra) if w)
            print(
                f"error: quote the question, as one argument: vqa ask {args.run_dir} "
                f'{args.image} "{words}"',
                file=sys.stderr,
            )
            return 2
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        load_plugins()
        code = args.func(args)  # a command that partly failed returns 1 (ask --batch)
    except VQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `vqa score ... | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
