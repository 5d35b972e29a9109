"""Argument types shared by the subcommands' parsers."""

from __future__ import annotations

import argparse

__all__ = ["positive_int"]


def positive_int(text: str) -> int:
    """An integer of at least 1 (``argparse`` type).

    Raises:
        argparse.ArgumentTypeError: Smaller than 1.
        ValueError: Not an integer (argparse reports it as an invalid int).
    """
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
