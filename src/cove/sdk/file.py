"""Binary files passed into and out of applications."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class File:
    """Raw bytes with a content type.

    An application parameter hinted ``File`` receives an uploaded file as is (no JSON); an
    application returning ``File`` answers with ``content`` as the HTTP body and
    ``content_type`` as its ``Content-Type``. Between functions a ``File`` passes as is.
    """

    content: bytes
    content_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        if isinstance(self.content, bytearray | memoryview):
            self.content = bytes(self.content)
        if not isinstance(self.content, bytes):
            raise TypeError(f"File.content must be bytes, got {type(self.content).__name__}")

    def __repr__(self) -> str:
        return f"File({len(self.content)} bytes, content_type={self.content_type!r})"
