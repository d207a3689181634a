"""What `vqa COMMAND --help` shows besides the arguments: an example per command, and
each option's default."""

from __future__ import annotations

import argparse

EXAMPLES = {
    "prepare": "vqa prepare folder --root photos --out data/mine",
    "train": "vqa train data/mine --config experiments/configs/easy-vqa/concat.yaml "
    "--out runs/concat",
    "evaluate": "vqa evaluate runs/concat data/mine --split test",
    "score": "vqa score data/vqa-v2 --split val2014 --results results.json",
    "caption": "vqa caption runs/captions photo.jpg --decode beam --explain words.png",
    "ask": 'vqa ask runs/concat photo.jpg "what color is the cat?" --explain why.png',
    "export": "vqa export runs/concat --out bundles/concat  # then: vqa ask bundles/concat ...",
    "serve": "vqa serve runs/concat --port 8000",
    "compare": "vqa compare data/easy-vqa experiments/configs/easy-vqa/*.yaml",
    "extract": "vqa extract data/mine --backbone efficientnet_lite0",
    "classify": "vqa classify photo.jpg --top-k 5",
    "demo": "vqa demo --epochs 1",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default in its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" not in text
            and action.default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def show_every_default(parser: argparse.ArgumentParser) -> None:
    """Give every option that has a default but no help a help line, so that argparse
    (which prints nothing for an option without help) shows its default; through every
    subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                show_every_default(sub)
        elif (
            action.help is None
            and action.option_strings
            and action.default not in (None, False, argparse.SUPPRESS)
        ):
            action.help = "default: %(default)s"
