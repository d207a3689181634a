"""A run directory: its files and checks (files.py), its model card, and the atomic
writes and locks every writer of runs and caches uses. Light on purpose: nothing here
imports TensorFlow or Keras (vqa.runtime reads model cards)."""
