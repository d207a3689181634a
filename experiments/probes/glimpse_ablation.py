"""Which hop's glimpse does a two-hop attention run answer from, and does it use the
words each hop reads?

    python experiments/probes/glimpse_ablation.py RUN OUT --hop 0
    python experiments/probes/glimpse_ablation.py RUN OUT --words
    vqa evaluate OUT DATA

Copies the finished run RUN to OUT (which must not exist) with one part cut off.
`--hop H`: hop H's glimpse, from the fusion (the rows of the fusion's image projection
that read that glimpse are set to zero), so the answer is computed from the other
hops' glimpses alone. `--words` (a run with `attention_words`): what every hop read of
the question (each hop's word projection W_c is set to zero, as it starts), so the
hops score the cells with the question vector alone. Evaluating OUT per question type
then shows which families need that part (experiments/notes/scenes.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def ablate(run: Path, out: Path, hop: int | None = None, words: bool = False) -> str:
    """Copy `run` to `out` with `hop`'s glimpse, or the hops' word reading, cut off;
    what was zeroed, in words."""
    import keras

    import vqa.models  # noqa: F401  (registers the custom layers before loading)
    from vqa.config import load_config
    from vqa.runs import files

    files.check_run_dir(run)
    config = load_config(run / files.CONFIG).model
    if words:
        if not config.attention_words:
            raise ValueError(
                f"{run} does not read words in its attention "
                "(attention_words: false): there is nothing to cut."
            )
    else:
        # ModelConfig allows attention only with both inputs and a concat/elementwise/mfb
        # fusion, so a run with two hops or more has a layer named "fusion" to cut.
        if config.attention_hops < 2:
            raise ValueError(
                f"{run} has {config.attention_hops} attention hop(s): there is "
                "no other glimpse to answer from."
            )
        if not 0 <= hop < config.attention_hops:
            raise ValueError(f"--hop must be 0 to {config.attention_hops - 1}. Received: {hop}")
    if out.exists():
        raise ValueError(f"{out} exists; give the ablated copy a new directory.")
    model = keras.models.load_model(run / files.MODEL, compile=False)
    what = _cut_words(model) if words else _cut_glimpse(model, config, hop)
    shutil.copytree(run, out)
    model.save(out / files.MODEL)
    return what


def _cut_words(model) -> str:
    """Zero every hop's word projection W_c (as the layer starts)."""
    import keras

    values = model.get_layer("attention").word_value
    for value in values:
        value.kernel.assign(keras.ops.zeros_like(value.kernel))
    return ", ".join(value.kernel.path for value in values) + " zeroed"


def _cut_glimpse(model, config, hop: int) -> str:
    """Zero the rows of the fusion's projection that read `hop`'s glimpse."""
    import keras

    fusion = model.get_layer("fusion")
    # concat reads [question, glimpses] in one projection; the others project the image.
    project = fusion.project if config.fusion == "concat" else fusion.project_image
    kernel = keras.ops.convert_to_numpy(project.kernel)
    width = config.image_dim  # one glimpse: a weighted sum of image_dim-wide cells
    first = kernel.shape[0] - (config.attention_hops - hop) * width  # the question's rows first
    kernel[first : first + width] = 0.0
    project.kernel.assign(kernel)
    return f"rows {first}-{first + width - 1} of {project.path}/kernel zeroed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run with attention")
    parser.add_argument("out", type=Path, help="the ablated copy (a new directory)")
    cut = parser.add_mutually_exclusive_group(required=True)
    cut.add_argument("--hop", type=int, help="the hop whose glimpse to cut off, from 0")
    cut.add_argument(
        "--words",
        action="store_true",
        help="cut off what every hop reads of the question (attention_words)",
    )
    args = parser.parse_args(argv)
    try:
        what = ablate(args.run, args.out, args.hop, args.words)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    part = "the hops' word reading" if args.words else f"hop {args.hop}'s glimpse"
    print(f"{args.out}: {args.run} without {part} ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
