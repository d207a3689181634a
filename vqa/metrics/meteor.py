"""METEOR 1.5 (Denkowski and Lavie 2014), as the COCO caption evaluation runs it: the
jar that pycocoevalcap ships, in a Java process. The only caption metric not ported to
Python (vqa.metrics.captions): it needs `java` on PATH and pycocoevalcap installed, and
is left out (None) where either is missing."""

from __future__ import annotations

import atexit
import logging
import shutil
from collections.abc import Hashable, Mapping, Sequence

logger = logging.getLogger(__name__)

# One METEOR Java process for this Python process, started on first use and kept: it
# takes seconds to start (a JVM and METEOR's tables), and `vqa compare` or an evaluation
# after each epoch would otherwise pay that for every scoring. Its protocol holds no state
# between scorings (each EVAL line carries its own statistics).
_meteor_scorer = None


def meteor_score(
    refs: Mapping[Hashable, Sequence[str]], hyps: Mapping[Hashable, str]
) -> float | None:
    """The corpus METEOR of one hypothesis per image (hyps) against its references
    (refs; the keys of hyps are the images scored), or None when it cannot run here."""
    global _meteor_scorer
    if shutil.which("java") is None:
        return None
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError:
        return None
    try:
        if _meteor_scorer is None or _meteor_scorer.meteor_p.poll() is not None:
            _close_meteor()  # a process that ended is started again
            _meteor_scorer = Meteor()
        score, _ = _meteor_scorer.compute_score(
            {key: list(refs[key]) for key in hyps}, {key: [hyp] for key, hyp in hyps.items()}
        )
    except (OSError, ValueError) as error:  # the Java process failed or died
        logger.warning("METEOR left out: pycocoevalcap's METEOR failed (%s).", error)
        _close_meteor()
        return None
    return float(score)


def _close_meteor() -> None:
    """End the kept METEOR process, if any. A scoring that failed midway left its lock
    held, which its __del__ would wait on forever: released first."""
    global _meteor_scorer
    scorer, _meteor_scorer = _meteor_scorer, None
    if scorer is None:
        return
    if scorer.lock.locked():
        scorer.lock.release()
    with scorer.lock:
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()


atexit.register(_close_meteor)
