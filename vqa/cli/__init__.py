"""The `vqa` command: argument parsing and thin handlers, one module per group.

main.py        the parser and `main`
data.py        prepare, extract, classify
train.py       train, evaluate, score, compare, demo
answer.py      ask, export, serve: answering a run or a bundle
caption.py     the captioning commands
answer_csv.py  `vqa ask --batch`: questions in, answers out, as CSV
demo.py        `vqa demo`: the whole path on embedded data
help.py        the help text's shared pieces
"""

from vqa.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
