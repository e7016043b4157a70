"""Retry policy for function calls."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cove.errors import SDKUsageError

MAX_RETRIES_LIMIT = 10


@dataclass(frozen=True)
class Retries:
    """How often a failed call is retried, and how long to wait between attempts.

    Attempt ``n`` (1-based retry number) waits ``initial_delay * delay_multiplier**(n-1)``
    seconds, capped at ``max_delay``.
    """

    max_retries: int = 0
    initial_delay: float = 1.0
    max_delay: float = 60.0
    delay_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or not 0 <= self.max_retries <= MAX_RETRIES_LIMIT:
            raise SDKUsageError(
                f"Retries.max_retries must be an integer from 0 to {MAX_RETRIES_LIMIT}, "
                f"got {self.max_retries!r}"
            )
        if self.initial_delay < 0 or self.max_delay < 0:
            raise SDKUsageError("Retries delays must not be negative")
        if self.delay_multiplier < 1:
            raise SDKUsageError(
                f"Retries.delay_multiplier must be at least 1, got {self.delay_multiplier!r}"
            )

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        raw = self.initial_delay * self.delay_multiplier ** max(0, retry_number - 1)
        return float(min(raw, self.max_delay))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Retries:
        return cls(**data)
