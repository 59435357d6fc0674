"""The ranges a number key may take; each group's schema lists its keys' ranges in ``RANGES``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """The values a number key may take: ``low`` and ``high`` (None: unbounded), each bound
    included unless ``*_open``. Every group's schema lists its keys' ranges in ``RANGES``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open
                                        else value <= self.high)
        return low_ok and high_ok

    def text(self) -> str:
        """As the refusal says it: ``be > 0``, ``be >= 1``, ``lie in [0, 1)``, ``lie in (0, 8]``."""
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            return f"be {'>' if self.low_open else '>='} {low}"
        return (f"lie in {'(' if self.low_open else '['}{low}, {high}"
                f"{')' if self.high_open else ']'}")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value == int(value) else f"{value:g}"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
UNIT = Range(0, 1)  # a probability or share: [0, 1]
BELOW_ONE = Range(0, 1, high_open=True)  # [0, 1)
