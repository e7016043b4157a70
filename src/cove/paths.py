"""Paths from settings, options and arguments, made absolute once, where they enter.

Containers and templates run with their code folder as working directory, so a path left
relative to the directory a command was started in would point elsewhere inside them.
"""

from __future__ import annotations

import os
from pathlib import Path


def absolute_path(path: Path | str) -> Path:
    """``path`` made absolute against the working directory (``~`` expanded), without
    resolving links: the place a user meant when they typed it where they stand."""
    return Path(os.path.abspath(Path(path).expanduser()))
