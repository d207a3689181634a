"""Pure metric functions, importable from anywhere (data_prep included): no TensorFlow,
no models, no datasets."""

from vqa.metrics.captions import (bleu, cider_d, distinct_ngram_ratio, distinct_ngrams,
                                  rouge_l, score_captions, tokenize)
from vqa.metrics.vqa_accuracy import (DEFAULT_EVALUATOR, EVALUATORS, AnswerScorer,
                                      answer_scores, best_answer, check_evaluator,
                                      normalize_answer, normalize_digits_articles,
                                      normalize_punctuation, percent, single_form,
                                      strip_answer, vqa_accuracy)

__all__ = ["DEFAULT_EVALUATOR", "EVALUATORS", "AnswerScorer", "answer_scores", "best_answer",
           "bleu", "check_evaluator", "cider_d", "distinct_ngram_ratio", "distinct_ngrams",
           "normalize_answer", "normalize_digits_articles", "normalize_punctuation", "percent",
           "rouge_l", "score_captions", "single_form", "strip_answer", "tokenize",
           "vqa_accuracy"]
