"""Container images: a description of the environment a function runs in."""

from __future__ import annotations

import hashlib
import json
from typing import Any


class Image:
    """A container image built from a base with extra steps.

    On the local runtime an image becomes an isolated environment; the steps are recorded
    in the manifest so that a deployed version's environment never changes.
    """

    def __init__(self, name: str = "default", base_image: str = "python:3.11-slim") -> None:
        self.name = name
        self.base_image = base_image
        self.steps: list[tuple[str, tuple[str, ...]]] = []

    def run(self, command: str) -> Image:
        """Run a shell command while building (for example ``pip install ...``)."""
        self.steps.append(("run", (command,)))
        return self

    def env(self, key: str, value: str) -> Image:
        """Set an environment variable in the image."""
        self.steps.append(("env", (key, value)))
        return self

    def copy(self, src: str, dst: str) -> Image:
        """Copy a local file or folder into the image."""
        self.steps.append(("copy", (src, dst)))
        return self

    def workdir(self, directory: str) -> Image:
        """Set the working directory of the function's process."""
        self.steps.append(("workdir", (directory,)))
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_image": self.base_image,
            "steps": [[op, list(args)] for op, args in self.steps],
        }

    @property
    def content_hash(self) -> str:
        """A hash of everything that defines the image."""
        data = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(data).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Image(name={self.name!r}, steps={len(self.steps)})"
