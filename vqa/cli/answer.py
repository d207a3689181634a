"""The `vqa` commands that answer: ask, export, serve. A run directory answers through
vqa.Answerer (Keras); a bundle from `vqa export` through vqa.runtime, without TensorFlow.
`vqa ask RUN` answers from RUN/bundle (written when training ends) when that is current,
and writes it after answering with Keras when it is not: the next ask skips TensorFlow.
Inputs are checked before anything heavy loads, so that a mistake is reported at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vqa.errors import VQAError
from vqa.startup import import_quietly


def load_keras() -> None:
    """Import Keras (and TensorFlow) without its start-up notes (vqa.startup). Commands
    call this after checking their inputs, so that a mistake is reported at once and
    alone."""
    import_quietly("keras")


def cmd_ask(args: argparse.Namespace) -> int:
    from vqa.data.images import open_image
    from vqa.data.text import check_question

    # Check the inputs before TensorFlow loads: a mistake is reported at once, alone.
    _check_model_dir(args.run_dir)
    if args.top_k < 1:
        raise VQAError(f"--top-k must be at least 1. Received: {args.top_k}")
    if args.batch:
        if args.image or args.question or args.explain:
            raise VQAError(
                "--batch reads the images and questions from its CSV: give no "
                "IMAGE, QUESTION or --explain with it."
            )
        return _ask_batch(args)
    if args.image is None or args.question is None:
        raise VQAError("Give an IMAGE and a QUESTION, or --batch questions.csv.")
    image = open_image(args.image)
    check_question(args.question)
    if args.explain and not Path(args.explain).resolve().parent.is_dir():
        raise VQAError(f"--explain: the folder of {args.explain} does not exist.")
    from vqa.inference import format_answer

    answerer = _load_answerer(args.run_dir, fast=not args.explain)  # explain: Grad-CAM too
    if args.explain:
        result = answerer.explain(image, args.question, args.explain, top_k=args.top_k)
    else:
        result = answerer.answer(image, args.question, top_k=args.top_k)
    print(format_answer(result))
    if answerer.summary:
        print(f"model: {answerer.summary}")
    if args.explain:
        print(f"explanation: {args.explain}")
    elif not _is_bundle(answerer):
        sys.stdout.flush()  # the answer first; then the bundle that makes the next one fast
        from vqa.export import write_run_bundle

        write_run_bundle(args.run_dir)
    return 0


def _ask_batch(args: argparse.Namespace) -> int:
    """Answers every row it can; exits 1 when any row failed (its error column says
    why), so that a script notices."""
    from vqa.cli.answer_csv import answer_csv, check_paths, read_questions

    source, out = check_paths(args.batch, args.out)
    read_questions(source)  # checked before TensorFlow loads
    answers = answer_csv(_load_answerer(args.run_dir), source, out, top_k=args.top_k)
    failed = int((answers["error"] != "").sum())
    print(
        f"{len(answers) - failed} of {len(answers)} questions answered"
        + (f", {failed} failed (see the error column)" if failed else "")
        + f": {out}"
    )
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> None:
    from vqa.runs.files import check_run_dir

    check_run_dir(args.run_dir)
    load_keras()
    from vqa.export import export_run

    info = export_run(args.run_dir, args.out, args.format, overwrite=args.overwrite)
    check = info.get("check")
    checked = (
        f"; on a check batch it differs from the Keras model by at most "
        f"{max(check['max_abs_difference'].values()):.1e}"
        if check
        else ""
    )
    print(f"exported {args.run_dir} to {args.out} ({args.format}){checked}")


def _check_model_dir(path: str) -> None:
    """A run directory, or a bundle from `vqa export`; checked before anything loads."""
    from vqa.runs.files import check_run_dir
    from vqa.runtime import is_bundle

    if not is_bundle(path):
        check_run_dir(path)


def _load_answerer(path: str, fast: bool = True):
    """An exported bundle answers through vqa.runtime (no TensorFlow); a run directory
    through its own bundle where that is current (`fast`), else vqa.Answerer."""
    from vqa import runtime

    if runtime.is_bundle(path):
        return runtime.load(path)
    from vqa.runs.files import current_bundle

    bundle = current_bundle(path) if fast else None  # hashes model.keras: once
    if bundle is not None:
        return runtime.load(bundle)
    load_keras()
    from vqa.answering import Answerer

    return Answerer.load(path)


def _is_bundle(answerer) -> bool:
    from vqa.runtime import Bundle

    return isinstance(answerer, Bundle)


def cmd_serve(args: argparse.Namespace) -> None:
    from vqa.serve import Batching, make_server

    _check_model_dir(args.run_dir)  # checked before TensorFlow loads
    captioner = None
    if args.caption:
        from vqa.runs.files import NEEDED_TO_CAPTION, check_run_dir

        check_run_dir(args.caption, NEEDED_TO_CAPTION)
    batching = Batching(args.max_batch, args.max_wait_ms, args.max_queue)
    if args.caption:
        load_keras()
        from vqa.captioning import Captioner

        captioner = Captioner.load(args.caption)
    server = make_server(_load_answerer(args.run_dir), args.host, args.port, batching, captioner)
    host, port = server.server_address[:2]
    print(
        f"serving {args.run_dir} on http://{host}:{port}/ (API docs: /docs; Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped")
