"""Rows, the final table (plain and Markdown), the machine description and README writing."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ._stats import Paired

HEADERS = ("benchmark", "tango-async", "alternative(s)", "ratio", "target", "met?")
README = Path(__file__).with_name("README.md")
TABLE_START = "<!-- benchmarks:table:start -->"
TABLE_END = "<!-- benchmarks:table:end -->"


@dataclass(slots=True)
class Row:
    """One line of the final table. ``met``: True / False against a target, None when the
    row is informational or was skipped."""

    benchmark: str
    tango: str
    alternative: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None

    def cells(self) -> tuple[str, ...]:
        met = "—" if self.met is None else ("yes" if self.met else "**NO**")
        return (self.benchmark, self.tango, self.alternative, self.ratio, self.target, met)


@dataclass(slots=True)
class Result:
    """What one benchmark module returns: its rows and notes on how they were measured."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def skipped(name: str, benchmark: str, reason: str, target: str = "—") -> Result:
    return Result(name, [Row(benchmark, f"skipped: {reason}", target=target)])


def table(rows: list[Row]) -> str:
    """A Markdown table, padded so it also reads well on a terminal."""
    cells = [HEADERS, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(HEADERS), rule, *(line(c) for c in cells[1:])])


def notes_text(results: list[Result]) -> str:
    out: list[str] = []
    for r in results:
        for n in r.notes:
            out.append(f"- {r.name}: {n}")
    return "\n".join(out)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    libs = ", ".join(
        f"{d} {version(d)}"
        for d in ("tango-async", "aiohttp", "msgspec", "pydantic", "raas", "requests", "redis")
    )
    return [
        f"CPU: {cpu_model()}, {cores} cores ({usable} usable)",
        f"OS: {platform.system()} {platform.release()}",
        f"Python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"Libraries: {libs}",
        "Load average (1, 5, 15 min) at the end: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (other work on the machine skews the figures; each ratio is measured side by side)",
    ]


def write_readme(rows: list[Row], results: list[Result], command: str, elapsed: float) -> None:
    """Replace the table section of benchmarks/README.md (between the markers)."""
    body = "\n".join(
        [
            TABLE_START,
            f"Command (from the repository root): `{command}` — took {elapsed:.0f} s.",
            "",
            *(f"- {m}" for m in machine()),
            "",
            table(rows),
            "",
            "How each figure was measured:",
            "",
            notes_text(results),
            TABLE_END,
        ]
    )
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        tail = rest.split(TABLE_END, 1)[1]
        text = head + body + tail
    else:
        text = text.rstrip("\n") + "\n\n## Latest results\n\n" + body + "\n"
    README.write_text(text, encoding="utf-8")


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.1f} µs" if us < 100 else f"{us:,.0f} µs"


def fmt_rate(per_second: float, unit: str = "req/s") -> str:
    return f"{per_second:,.0f} {unit}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


EN_DASH = "\u2013"


def fmt_paired(p: Paired) -> str:
    """A paired comparison for the ratio column: ``4.13x (3.90-4.40)`` with an en dash, the
    median of the per-round ratios and their minimum and maximum (the number of rounds is
    in the notes)."""
    digits = 2 if p.median < 10 else 1
    return f"{p.median:.{digits}f}x ({p.low:.{digits}f}{EN_DASH}{p.high:.{digits}f})"
