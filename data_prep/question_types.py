"""VQA's official question types, and the type of a question of one's own (the longest
official prefix of its words), for sources that come without them."""

from __future__ import annotations

import re

# GT-Vision-Lab/VQA QuestionTypes/mscoco_question_types.txt: the 65 types of VQA's
# questions, by the words they start with.
VQA_QUESTION_TYPES = (
    "how many",
    "is the",
    "what",
    "what color is the",
    "what is the",
    "is this",
    "is this a",
    "what is",
    "are the",
    "what kind of",
    "is there a",
    "what type of",
    "is it",
    "what are the",
    "where is the",
    "is there",
    "does the",
    "what color are the",
    "are these",
    "are there",
    "which",
    "is",
    "what is the man",
    "is the man",
    "are",
    "how",
    "does this",
    "what is on the",
    "what does the",
    "how many people are",
    "what is in the",
    "what is this",
    "do",
    "what are",
    "are they",
    "what time",
    "what sport is",
    "are there any",
    "is he",
    "what color is",
    "why",
    "where are the",
    "what color",
    "who is",
    "what animal is",
    "is the woman",
    "is this an",
    "do you",
    "how many people are in",
    "what room is",
    "has",
    "is this person",
    "what is the woman",
    "can you",
    "why is the",
    "is the person",
    "what is the color of the",
    "what is the person",
    "could",
    "was",
    "is that a",
    "what number is",
    "what is the name",
    "what brand",
    "none of the above",
)
_PREFIXES = sorted((tuple(t.split()) for t in VQA_QUESTION_TYPES[:-1]), key=len, reverse=True)
_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def question_type(question: str) -> str:
    """The longest official VQA question-type prefix of `question`'s words."""
    words = tuple(_WORDS.findall(question.lower()))
    for prefix in _PREFIXES:
        if words[: len(prefix)] == prefix:
            return " ".join(prefix)
    return "none of the above"
