"""Pure metric functions, importable from anywhere (data_prep included): no TensorFlow,
no models, no datasets."""

from vqa.metrics.vqa_accuracy import (DEFAULT_EVALUATOR, EVALUATORS, AnswerScorer,
                                      answer_scores, best_answer, check_evaluator,
                                      normalize_answer, normalize_digits_articles,
                                      normalize_punctuation, percent, single_form,
                                      strip_answer, vqa_accuracy)

__all__ = ["DEFAULT_EVALUATOR", "EVALUATORS", "AnswerScorer", "answer_scores", "best_answer",
           "check_evaluator", "normalize_answer", "normalize_digits_articles",
           "normalize_punctuation", "percent", "single_form", "strip_answer",
           "vqa_accuracy"]
