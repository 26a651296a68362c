"""Argument types and the parser: every value checked before any work, one line per mistake."""
import argparse
import math
import os
import re
import sys

__all__ = ["UsageError", "Parser", "positive_int", "natural_int", "positive_float", "threads",
           "input_shape", "existing_file", "folder", "existing_folder", "one_line", "say"]


class UsageError(Exception):
    """A user's mistake found after parsing (e.g. --top larger than the model's classes):
    printed as one line, exit code 2, like argparse's own errors."""


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (``minicnn train: error: ...``) and a pointer to
    --help, instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text):
    return _int(text, 1)


def natural_int(text):
    return _int(text, 0)


def _int(text, low):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def threads(text):
    from ..runtime import MAX_THREADS

    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {value}")
    return value


def input_shape(text):
    """'1,28,28', '1x28x28', '1 28 28' or '(1, 28, 28)' -> (1, 28, 28); one number for a model
    that starts with Dense."""
    parts = [p for p in re.split(r"[,x\s]+", text.strip().strip("()[]").lower()) if p]
    if not parts or not all(p.isdigit() for p in parts) or len(parts) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected one image's shape C,H,W such as 1,28,28 (or 1x28x28), "
                                         f"got {text!r}")
    shape = tuple(int(p) for p in parts)
    if min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return shape


def existing_file(text):
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    return text


def folder(text):
    """A folder that may not exist yet, but is not a file."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def existing_folder(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such folder: {text}" if not os.path.exists(text)
                                         else f"{text} is a file, not a folder")
    return text


def one_line(text):
    """Collapse a multi-line message into one line."""
    return " ".join(str(text).split())


def say(command, message):
    print(f"minicnn {command}: error: {one_line(message)}", file=sys.stderr)
