"""Close a run that was stopped from outside, by a time limit, as early stopping would.

    python benchmarks/finish_run.py DATA CONFIG RUN_DIR

The run keeps its best finished epoch as model.keras and gets its training.json, with
`stopped_early: true`. A run that finished by itself is left as it is; one stopped
before its first epoch ended has nothing to keep and is reported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqa.runs import (
    atomic,  # noqa: E402
    files,
)
from vqa.training import train  # noqa: E402


def main(argv: list[str]) -> int:
    data, config, run = argv[0], argv[1], Path(argv[2])
    if (run / files.TRAINING).is_file():
        print(f"{run}: finished by itself")
        return 0
    state_path = run / files.CHECKPOINT_DIR / files.STATE
    if not state_path.is_file():
        print(f"{run}: stopped before its first epoch ended; nothing to keep")
        return 1
    state = json.loads(state_path.read_text())
    state["stopped_early"] = True  # resuming now trains no further epoch
    atomic.write_json(state, state_path)
    summary = train(data, run, config, verbose=0)
    print(
        f"{run}: stopped after {summary['epochs_run']} epochs; best epoch "
        f"{summary['best_epoch']} ({summary['best_val_vqa_score']}% validation)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
