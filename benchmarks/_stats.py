"""Paired comparisons: each round is measured against its partner, and the ratios reported as
a median with its min-max, never an unpaired best-of."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Paired", "paired"]


@dataclass(frozen=True, slots=True)
class Paired:
    """The per-round ratios of one comparison."""

    ratios: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def low(self) -> float:
        return min(self.ratios)

    @property
    def high(self) -> float:
        return max(self.ratios)

    def text(self, digits: int = 2) -> str:
        """``4.13x (3.90\u20134.40, 9 rounds)``."""
        return (
            f"{self.median:.{digits}f}x ({self.low:.{digits}f}\u2013{self.high:.{digits}f}, "
            f"{len(self.ratios)} rounds)"
        )


def paired(numerators: Sequence[float], denominators: Sequence[float]) -> Paired:
    """Ratios round by round: ``numerators[i] / denominators[i]`` (e.g. their time / ours)."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError("paired() needs two equally long, non-empty series")
    return Paired(tuple(n / d for n, d in zip(numerators, denominators, strict=True)))
