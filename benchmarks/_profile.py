"""Profiles and what-if experiments behind the README's explanations of missed targets.

``python -m benchmarks._profile decode``    model variants (gc=False, no __post_init__),
                                            timed with the GC off (timeit) and on
``python -m benchmarks._profile decode-native``  py-spy --native leaf functions of decoding
``python -m benchmarks._profile overhead``  pyinstrument trees: TangoClient vs raw aiohttp
``python -m benchmarks._profile pacing``    LocalRateLimiter's real gaps vs its spacing
"""

from __future__ import annotations

import asyncio
import functools
import gc
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import types
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec

import tango_async.types.orders as orders_module
from tango_async import LocalRateLimiter

from ._bodies import page_body
from ._config import ROOT

_GC_OFF = 'class _Wire(msgspec.Struct, rename="camel", omit_defaults=True):'
_GC_ON = 'class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):'
_POST_INIT = (
    "    def __post_init__(self) -> None:\n"
    "        if self.credential_list is None:\n"
    "            self.credential_list = []\n"
)


def _variant(name: str, edits: list[tuple[str, str]]) -> Any:
    """tango_async.types.orders with source edits applied, as a throwaway module."""
    source = Path(orders_module.__file__).read_text(encoding="utf-8")
    for old, new in edits:
        if old not in source:
            raise RuntimeError(f"variant {name!r}: the models changed; update _profile.py")
        source = source.replace(old, new)
    module = types.ModuleType(f"_variant_{name}")
    sys.modules[module.__name__] = module  # msgspec resolves annotations through it
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module.OrderListWire


def _time(fn: Callable[[], Any], gc_on: bool) -> float:
    timer = timeit.Timer(fn, setup="gc.enable()" if gc_on else "pass", globals={"gc": gc})
    return min(timer.repeat(repeat=7, number=100)) / 100


def decode() -> None:
    body = page_body(100)
    variants = {
        "as shipped": [],
        "gc=False": [(_GC_OFF, _GC_ON)],
        "no Reward.__post_init__": [(_POST_INIT, "")],
        "gc=False + no __post_init__": [(_GC_OFF, _GC_ON), (_POST_INIT, "")],
        "(for scale) float money": [
            (f"{f}: Decimal | None", f"{f}: float | None")
            for f in ("value", "exchange_rate", "fee", "total")
        ],
    }
    untyped = msgspec.json.Decoder()
    print("GET /orders page of 100 verbose orders, µs per decode (best of 7 x 100)")  # noqa: T201
    print(f"{'variant':32} {'GC off':>8} {'GC on':>8}")  # noqa: T201
    for name, edits in variants.items():
        dec = msgspec.json.Decoder(_variant(name.replace(" ", "_"), edits))
        off = _time(functools.partial(dec.decode, body), False)
        on = _time(functools.partial(dec.decode, body), True)
        print(f"{name:32} {off * 1e6:8.0f} {on * 1e6:8.0f}")  # noqa: T201
    off, on = _time(lambda: untyped.decode(body), False), _time(lambda: untyped.decode(body), True)
    print(f"{'msgspec untyped (dicts, floats)':32} {off * 1e6:8.0f} {on * 1e6:8.0f}")  # noqa: T201


def decode_loop(seconds: float = 6.0) -> None:
    from tango_async._transport import Response
    from tango_async.types.orders import OrderListWire

    resp = Response(200, {}, page_body(100), "GET", "/orders")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        resp.parse(OrderListWire)


def decode_native() -> None:
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "decode.txt"
        subprocess.run(
            [
                "py-spy",
                "record",
                "--native",
                "-r",
                "500",
                "-f",
                "raw",
                "-o",
                str(raw),
                "--",
                sys.executable,
                "-m",
                "benchmarks._profile",
                "decode-loop",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        leaves: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, samples = line.rsplit(" ", 1)
            if "_codec.py" in stack:
                leaves[stack.split(";")[-1].split(" (")[0]] += int(samples)
    total = sum(leaves.values())
    print(f"py-spy --native, {total} samples inside _codec.decode_body, by leaf function:")  # noqa: T201
    for name, count in leaves.most_common(15):
        print(f"{count / total * 100:5.1f}%  {name}")  # noqa: T201


def overhead() -> None:
    from pyinstrument import Profiler

    import tango_async as ta

    from ._drive import drive
    from ._overhead import NAME_KEY, RawAiohttp
    from ._procs import Child, pinned, split_cpus

    async def main(url: str) -> None:
        async with ta.TangoClient(*NAME_KEY, base_url=url) as tango, RawAiohttp(url) as raw:
            for name, call in (("TangoClient", tango.orders.get), ("raw aiohttp", raw.get)):
                await drive(call, 1000, 64)
                profiler = Profiler(interval=0.0005)
                profiler.start()
                run = await drive(call, 10000, 64)
                profiler.stop()
                print(f"=== {name}: {run.rate:,.0f} req/s under the profiler")  # noqa: T201
                print(profiler.output_text(color=False, show_all=False))  # noqa: T201

    client_cpus, server_cpus = split_cpus()
    with Child("_server", [], cpu_set=server_cpus) as server, pinned(client_cpus):
        asyncio.run(main(server.ready["base_url"]))


def pacing(rate: float = 20.0, count: int = 60) -> None:
    async def main() -> None:
        limiter = LocalRateLimiter(rate)
        stamps: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            stamps.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(count)))
        gaps = [b - a for a, b in pairwise(stamps)]
        late = []
        for _ in range(20):
            t = time.monotonic()
            await asyncio.sleep(limiter.spacing)
            late.append(time.monotonic() - t - limiter.spacing)
        mean = statistics.mean(gaps)
        print(  # noqa: T201
            f"LocalRateLimiter({rate:g}/s): spacing {limiter.spacing * 1e3:.2f} ms, real gaps "
            f"mean {mean * 1e3:.2f} ms (min {min(gaps) * 1e3:.2f}); utilisation cap "
            f"{1 / rate / mean:.3f} before any network\n"
            f"asyncio.sleep({limiter.spacing * 1e3:.1f} ms) wakes late by "
            f"{statistics.mean(late) * 1e3:.2f} ms on average (max {max(late) * 1e3:.2f})"
        )

    asyncio.run(main())


COMMANDS: dict[str, Callable[[], None]] = {
    "decode": decode,
    "decode-loop": decode_loop,
    "decode-native": decode_native,
    "overhead": overhead,
    "pacing": pacing,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python -m benchmarks._profile {{{'|'.join(COMMANDS)}}}")
    COMMANDS[sys.argv[1]]()
