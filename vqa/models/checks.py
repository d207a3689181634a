"""Argument checks shared by the custom layers."""

from __future__ import annotations


def check_sizes(**sizes: int) -> None:
    """A layer's sizes must be positive; the error names each one and its value."""
    if any(v <= 0 for v in sizes.values()):
        received = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(f"{' and '.join(sizes)} must be positive. Received: {received}")
