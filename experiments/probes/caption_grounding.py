"""Where caption decoders look, and whether what they name is there, on our scenes.

    python experiments/probes/caption_grounding.py DATA RUN [RUN ...] [--images 270]

For each caption run, on the validation images it held out from training (none of the
test split is read), greedy captions, then:
- attention entropy: the mean over words of each word's attention entropy, as a
  fraction of the uniform attention's (1.0: the word looks at every cell alike, i.e.
  pools; the `pooled` twin is 1.0 by construction);
- named objects right: of the "colour shape" pairs a caption names, the share that are
  in the scene, and of the "size colour shape" ones, the share right in all three;
- captions all right: the share of captions whose every named object is in the scene.
DATA is a `vqa prepare scenes` directory (its clevr/scenes/*.json are the truth).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from data_prep.scenes import COLORS, SHAPES, SIZES


def _mentions(caption: str) -> list[tuple[str | None, str, str]]:
    """(size or None, colour, shape) of every object a caption names."""
    words = "|".join
    pattern = rf"\b(?:({words(SIZES)}) )?({words(COLORS)}) ({words(SHAPES)})s?\b"
    return [(m[0] or None, m[1], m[2]) for m in re.findall(pattern, caption)]


def _truth(data: Path) -> dict[str, list[dict]]:
    objects = {}
    for path in sorted((data / "clevr" / "scenes").glob("CLEVR_*_scenes.json")):
        for scene in json.loads(path.read_text())["scenes"]:
            objects[f"{scene['split']}/{scene['image_filename']}"] = scene["objects"]
    return objects


def grounding(results: dict, truth: dict[str, list[dict]]) -> dict:
    """The measures above for {image id: CaptionResult}, against the scenes' objects."""
    entropies, pairs, triples, all_right = [], [], [], []
    for image, result in results.items():
        for word in result.words:
            if word.attention is None:  # the pooled twin: every cell alike
                entropies.append(1.0)
                continue
            a = np.asarray(word.attention, dtype=np.float64).ravel()
            nonzero = a[a > 0]
            entropies.append(float(-(nonzero * np.log(nonzero)).sum() / np.log(a.size)))
        there = {(o["color"], o["shape"]) for o in truth[image]}
        there_sized = {(o["size"], o["color"], o["shape"]) for o in truth[image]}
        named = _mentions(result.caption)
        pairs += [(c, s) in there for _, c, s in named]
        triples += [(z, c, s) in there_sized for z, c, s in named if z]
        all_right.append(all((c, s) in there for _, c, s in named))

    def percent(flags):
        return round(100 * float(np.mean(flags)), 2) if flags else None

    return {
        "images": len(results),
        "attention_entropy": round(float(np.mean(entropies)), 3),
        "colour_shape_right": percent(pairs),
        "size_colour_shape_right": percent(triples),
        "captions_all_right": percent(all_right),
    }


def measure(data: Path, run: Path, images: int) -> dict:
    """Greedy captions of the run's first `images` held-out validation images, measured."""
    from vqa import Captioner

    held_out = json.loads((run / "validation_images.json").read_text())[:images]
    captions = Captioner.load(run).caption_batch([data / "images" / i for i in held_out])
    return {"run": str(run), **grounding(dict(zip(held_out, captions)), _truth(data))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--images", type=int, default=270)
    args = parser.parse_args(argv)
    for run in args.runs:
        print(json.dumps(measure(args.data, run, args.images)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
