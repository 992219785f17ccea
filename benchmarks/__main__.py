"""``python -m benchmarks [--quick] [--only NAME,...] [--write-readme]``: run the benchmarks
and print the table (benchmark | tango-async | alternative(s) | ratio | target | met?).

Exit status 0 when every benchmark ran (targets met or not: this is a measurement, not a
test), 1 when one crashed, 2 on bad usage."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from . import _adaptive, _decode, _history, _official, _overhead, _pacing
from ._config import Config
from ._report import Result, Row, machine, notes_text, table, write_readme

BENCHMARKS: dict[str, Callable[[Config], Result]] = {
    "decode": _decode.run,
    "overhead": _overhead.run,
    "official": _official.run,
    "pacing": _pacing.run,
    "history": _history.run,
    "adaptive": _adaptive.run,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, a smoke run in seconds (figures not meaningful)",
    )
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    p.add_argument(
        "--redis-url",
        default=Config().redis_url,
        help="Redis for the shared-limiter rows (default %(default)s; env TANGO_BENCH_REDIS_URL)",
    )
    p.add_argument(
        "--write-readme",
        action="store_true",
        help="write the table into benchmarks/README.md (full run of all only)",
    )
    return p


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        say(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    if args.write_readme and (args.quick or args.only):
        say("--write-readme records the full run only: drop --quick and --only")
        return 2
    cfg = Config(quick=args.quick, redis_url=args.redis_url)
    started = time.perf_counter()
    results: list[Result] = []
    crashed = False
    for name in names:
        say(f"running {name}{' (quick)' if cfg.quick else ''}...")
        t0 = time.perf_counter()
        try:
            results.append(BENCHMARKS[name](cfg))
        except Exception as e:  # report it in the table, finish the others, exit 1
            crashed = True
            traceback.print_exc()
            results.append(Result(name, [Row(name, f"error: {type(e).__name__}: {e}", met=False)]))
        say(f"  {name} took {time.perf_counter() - t0:.1f} s")
    elapsed = time.perf_counter() - started
    rows = [row for r in results for row in r.rows]
    out = sys.stdout
    out.write("\n" + "\n".join(machine()) + "\n\n")
    out.write(table(rows) + "\n\n" + notes_text(results) + "\n")
    caveat = " (quick: sizes too small to mean much)" if cfg.quick else ""
    out.write(f"\ntotal {elapsed:.1f} s{caveat}\n")
    if args.write_readme:
        command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
        write_readme(rows, results, command.strip(), elapsed)
        say("wrote benchmarks/README.md")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
