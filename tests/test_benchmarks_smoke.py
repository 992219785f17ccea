"""Smoke test of the benchmark suite: ``python -m benchmarks --quick`` runs every benchmark
at tiny sizes and prints the table. No timing is asserted: figures are measurements,
not test outcomes (see benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER = "| benchmark"


@pytest.mark.skipif(
    not (ROOT / "benchmarks" / "__main__.py").exists(), reason="no benchmarks/ (an sdist?)"
)
def test_quick_benchmarks_run_and_print_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert HEADER in out, out[-4000:]
    header = next(line for line in out.splitlines() if line.startswith(HEADER))
    for column in ("tango-async", "alternative(s)", "ratio", "target", "met?"):
        assert column in header
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    for benchmark in ("decode", "GET /orders/{id}", "GET-order calls", "pacing", "history export"):
        assert any(benchmark in row for row in rows), f"no {benchmark!r} row in:\n{out}"
    assert any("pacing" in row and "production" in row for row in rows), out[-4000:]
    # paired figures: the median ratio with its min-max, e.g. "2.46x (2.30\u20132.60)"
    cells = [[c.strip() for c in row.split("|")[1:-1]] for row in rows]
    reference = next(c for c in cells if c[0].startswith("decode") and "json.loads" in c[0])
    assert "x (" in reference[3], reference
