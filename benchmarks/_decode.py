"""Decoding: one GET /orders page of 100 verbose orders and one verbose order, into
tango-async's msgspec models, pydantic v2 models of the same shape, plain dicts
(stdlib json.loads) and the official raas 2.2.0 SDK's models."""

from __future__ import annotations

import gc
import json
import timeit
from collections.abc import Callable
from typing import Any

from tango_async._transport import Response
from tango_async.types.orders import Order, OrderListWire

from . import _optional
from ._bodies import order_body, page_body
from ._config import Config
from ._report import Result, Row, fmt_paired, fmt_us
from ._stats import paired
from ._timing import _batch, median

NAME = "decode"
PYDANTIC_TARGET = 5.0
RAAS_TARGET = 20.0
ROUNDS, QUICK_ROUNDS = 11, 3  # paired rounds: one batch of ours and one of theirs each
MIN_TIME = 0.1  # seconds per batch at least (full run; --quick: 0.01)


def _contenders(body: bytes, *, page: bool) -> dict[str, Callable[[], Any] | None]:
    path = "/orders" if page else "/orders/RA250101-00001-37"
    resp = Response(200, {}, body, "GET", path)
    tango_type = OrderListWire if page else Order
    out: dict[str, Callable[[], Any] | None] = {
        "tango-async": lambda: resp.parse(tango_type),
        "json.loads": lambda: json.loads(body),
    }
    models = _optional.pydantic_models()
    if models is None:
        out["pydantic v2"] = None
    else:
        pyd = models.OrderList if page else models.Order
        out["pydantic v2"] = lambda: pyd.model_validate_json(body)
    loaded = _optional.raas("raas.models.get_orders_response_model", "raas.models.order_model")
    if loaded is None:
        out["raas"] = None
    else:
        list_mod, order_mod = loaded
        raas_cls = list_mod.GetOrdersResponseModel if page else order_mod.OrderModel
        out["raas"] = lambda: raas_cls.from_dictionary(json.loads(body))
    return out


def _check(results: dict[str, Any], *, page: bool) -> None:
    """The contenders decoded the same thing (a guard against measuring a shortcut)."""
    tango = results["tango-async"]
    t_orders = tango.orders if page else [tango]
    pyd = results.get("pydantic v2")
    if pyd is not None:
        p_orders = pyd.orders if page else [pyd]
        assert len(p_orders) == len(t_orders)
        for t, p in zip(t_orders, p_orders, strict=True):
            assert t.reference_order_id == p.reference_order_id
            assert t.amount_charged.total == p.amount_charged.total
            assert t.created_at == p.created_at
            assert t.recipient.address.city == p.recipient.address.city
            assert len(t.reward.credential_list) == len(p.reward.credential_list)
    raas = results.get("raas")
    if raas is not None:
        r_orders = raas.orders if page else [raas]
        assert [o.reference_order_id for o in r_orders] == [o.reference_order_id for o in t_orders]


def paired_rounds(
    ours: Callable[[], Any],
    alternatives: dict[str, Callable[[], Any]],
    *,
    rounds: int,
    min_time: float,
    gc_on: bool = False,
) -> dict[str, tuple[list[float], list[float]]]:
    """Seconds per call, round by round: for each alternative, ``(ours, theirs)`` with one
    timeit batch of each per round, taken back to back (who goes first alternates from
    round to round and from pair to pair), so a burst of other work on the machine hits
    both sides of a pair alike. GC off, as in timeit, unless ``gc_on``."""
    setup = "gc.enable()" if gc_on else "pass"

    def timer(fn: Callable[[], Any]) -> tuple[timeit.Timer, int]:
        t = timeit.Timer(fn, setup=setup, globals={"gc": gc})
        return t, _batch(t, min_time)  # sizing the batch also warms it up

    def once(t: tuple[timeit.Timer, int]) -> float:
        return t[0].timeit(t[1]) / t[1]

    mine = timer(ours)
    theirs = {k: timer(fn) for k, fn in alternatives.items()}
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in alternatives}
    for r in range(rounds):
        for j, (k, t) in enumerate(theirs.items()):
            a, b = out[k]
            if (r + j) % 2 == 0:
                a.append(once(mine))
                b.append(once(t))
            else:
                b.append(once(t))
                a.append(once(mine))
    return out


def _measure(
    cfg: Config, label: str, body: bytes, *, page: bool, gc_on: bool = False
) -> tuple[list[Row], str]:
    contenders = _contenders(body, page=page)
    _check({k: fn() for k, fn in contenders.items() if fn is not None}, page=page)
    compared = (("pydantic v2", PYDANTIC_TARGET), ("raas", RAAS_TARGET), ("json.loads", 0))
    if gc_on:
        compared = compared[:2]
    ours_fn = contenders["tango-async"]
    assert ours_fn is not None
    alts = {k: fn for k, _ in compared if (fn := contenders[k]) is not None}
    times = paired_rounds(
        ours_fn,
        alts,
        rounds=cfg.pick(ROUNDS, QUICK_ROUNDS),
        min_time=cfg.pick_float(MIN_TIME, 0.01),
        gc_on=gc_on,
    )
    # our figure: the median over every batch of ours, whichever pair it belongs to
    ours_all = [t for a, _ in times.values() for t in a]
    if not ours_all:  # nothing installed to pair with: time ours alone
        ours_all = [timeit.Timer(ours_fn).timeit(100) / 100 for _ in range(3)]
    ours = median(ours_all)
    rows = []
    for alt, target in compared:
        name = f"decode {label}: vs {alt if alt != 'raas' else 'raas 2.2.0'}"
        if gc_on:
            name += " — GC on (extra)"
        if alt not in times:
            rows.append(Row(name, fmt_us(ours), f"{alt}: not installed", target=_t(target)))
            continue
        our_times, their_times = times[alt]
        ratio = paired(their_times, our_times)  # their time / ours, round by round
        rows.append(
            Row(
                name,
                fmt_us(ours),
                f"{alt}: {fmt_us(median(their_times))}",
                fmt_paired(ratio),
                _t(target),
                (ratio.median >= target) if target else None,
            )
        )
    return rows, f"{label}: {len(body):,} bytes"


def _t(target: float) -> str:
    return f">= {target:g}x" if target else "— (reference)"


def run(cfg: Config) -> Result:
    result = Result(NAME)
    sizes = []
    for label, body, page in (
        ("GET /orders page (100 verbose orders)", page_body(100), True),
        ("one verbose order", order_body(), False),
    ):
        rows, size = _measure(cfg, label, body, page=page)
        result.rows += rows
        sizes.append(size)
        if page:  # as in a running application: the cyclic GC collects during decoding
            result.rows += _measure(cfg, label, body, page=page, gc_on=True)[0]
    result.notes += [
        "bodies made by the local sandbox (reward credentials, sender, recipient with a postal "
        "address, campaign, notes; page items carry their rewards too): " + "; ".join(sizes),
        f"{cfg.pick(ROUNDS, QUICK_ROUNDS)} paired rounds per comparison: in each round one "
        f"timeit batch (>= {cfg.pick_float(MIN_TIME, 0.01):g} s, GC off as timeit does) of "
        "tango-async and one of the alternative, back to back, who goes first alternating "
        "from round to round; ratio = their time / ours in the same round, shown as the "
        "median over rounds with its minimum and maximum, the target judged on the median; the µs "
        "figures are the medians of the batches (ours: over every pair); the 'GC on (extra)' "
        "rows time the page with the cyclic GC enabled, as in a running application",
        "tango-async: Response.parse (msgspec into OrderListWire / Order); pydantic "
        "v2: model_validate_json into models of the same shape (benchmarks/_pydantic_models.py"
        ": aliases, Decimal money, aware datetime); raas 2.2.0: json.loads then "
        "GetOrdersResponseModel / OrderModel.from_dictionary (its real path uses "
        "jsonpickle.decode, slower still); json.loads: plain dicts, no models, floats",
    ]
    return result
