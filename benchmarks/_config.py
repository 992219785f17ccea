"""Run options shared by every benchmark."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"


@dataclass(frozen=True, slots=True)
class Config:
    quick: bool = False
    redis_url: str = os.environ.get("TANGO_BENCH_REDIS_URL", DEFAULT_REDIS_URL)

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def pick_float(self, full: float, quick: float) -> float:
        return quick if self.quick else full
