"""`vqa.pipeline(RUN)`: the call people who come from Hugging Face `transformers` know.

    pipe = vqa.pipeline("vqa-demo/run")           # a run, a captioning run, or a bundle
    pipe("photo.png", "what color is the shape?")  # [{"score": 0.99, "answer": "red"}]
    pipe(image, ["what color?", "what shape?"], top_k=2)   # one list per question
    vqa.pipeline("runs/captions")("photo.png")      # [{"generated_text": "a red circle"}]

An image is a path, the bytes of an image file, a PIL image or an array, as
`vqa.Answerer` takes it; one image is asked every question of a list. Each answer's dict
also carries `warnings` where there are any (an unknown word, a foreign image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vqa.data.images import ImageLike
from vqa.runs import files


class Pipeline:
    """A loaded model behind one call; see the module's docstring."""

    def __init__(self, model, task: str):
        self.model, self.task = model, task

    def __call__(
        self,
        image: ImageLike,
        question: str | Sequence[str] | None = None,
        top_k: int = 1,
        **caption_options,
    ) -> list:
        if self.task == "image-to-text":
            if question is not None:
                raise ValueError(
                    "A captioning pipeline describes the image; it takes no question. "
                    f"Received: question={question!r}"
                )
            result = self.model.caption(image, **caption_options)
            return [_with_warnings({"generated_text": result.caption}, result.warnings)]
        if question is None:
            raise ValueError("A visual-question-answering pipeline needs a question.")
        if caption_options:
            raise TypeError(f"Unexpected arguments for answering: {sorted(caption_options)}")
        one = isinstance(question, str)
        questions = [question] if one else list(question)
        results = self.model.answer_batch([image] * len(questions), questions, top_k=top_k)
        out = [
            [_with_warnings({"score": float(p), "answer": a}, r.warnings) for a, p in r.top_k]
            for r in results
        ]
        return out[0] if one else out


def _with_warnings(row: dict, warnings: Sequence[str]) -> dict:
    return {**row, "warnings": list(warnings)} if warnings else row


def pipeline(model: str | Path) -> Pipeline:
    """A run directory (VQA or captioning) or an exported bundle, as one callable: its
    `task` is "visual-question-answering" or "image-to-text"."""
    from vqa import runtime

    if runtime.is_bundle(model):
        return Pipeline(runtime.load(model), "visual-question-answering")
    if files.is_caption_run(model):
        from vqa.captioning import Captioner

        return Pipeline(Captioner.load(model), "image-to-text")
    from vqa.answering import Answerer

    return Pipeline(Answerer.load(model), "visual-question-answering")
