"""Decoding: one GET /orders page of 100 verbose orders and one verbose order, into
tango-async's msgspec models, pydantic v2 models of the same shape, plain dicts
(stdlib json.loads) and the official raas 2.2.0 SDK's models."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tango_async import _codec
from tango_async._transport import Response
from tango_async.types.orders import Order, OrderListWire

from . import _optional
from ._bodies import order_body, page_body
from ._config import Config
from ._report import Result, Row, fmt_ratio, fmt_us
from ._timing import race

NAME = "decode"
PYDANTIC_TARGET = 5.0
RAAS_TARGET = 20.0
REPEAT = 9  # batches of >= 0.1 s per contender (full run)


def _contenders(body: bytes, *, page: bool) -> dict[str, Callable[[], Any] | None]:
    path = "/orders" if page else "/orders/RA250101-00001-37"
    resp = Response(200, {}, body, "GET", path)
    tango_type = OrderListWire if page else Order
    out: dict[str, Callable[[], Any] | None] = {
        "tango-async": lambda: _codec.decode(resp, tango_type),
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


def _measure(
    cfg: Config, label: str, body: bytes, *, page: bool, gc_on: bool = False
) -> tuple[list[Row], str]:
    contenders = _contenders(body, page=page)
    _check({k: fn() for k, fn in contenders.items() if fn is not None}, page=page)
    repeat = cfg.pick(REPEAT, 3)
    min_time = 0.1 if not cfg.quick else 0.01
    present = {k: fn for k, fn in contenders.items() if fn is not None}
    best = race(present, repeat=repeat, min_time=min_time, gc_on=gc_on)
    times = {k: best.get(k) for k in contenders}
    ours = best["tango-async"]
    rows = []
    compared = (("pydantic v2", PYDANTIC_TARGET), ("raas", RAAS_TARGET), ("json.loads", 0))
    for alt, target in compared[:2] if gc_on else compared:
        theirs = times[alt]
        name = f"decode {label}: vs {alt if alt != 'raas' else 'raas 2.2.0'}"
        if gc_on:
            name += " — GC on (extra)"
        if theirs is None:
            rows.append(Row(name, fmt_us(ours), f"{alt}: not installed", target=_t(target)))
            continue
        ratio = theirs / ours
        rows.append(
            Row(
                name,
                fmt_us(ours),
                f"{alt}: {fmt_us(theirs)}",
                fmt_ratio(ratio),
                _t(target),
                (ratio >= target) if target else None,
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
        f"best of {cfg.pick(REPEAT, 3)} timeit batches per contender, taken in turns (GC off, as "
        "timeit does), µs per decode; "
        "ratio = their time / ours; the 'GC on (extra)' rows time the page with the cyclic GC "
        "enabled, as in a running application",
        "tango-async: tango_async._codec.decode (msgspec into OrderListWire / Order); pydantic "
        "v2: model_validate_json into models of the same shape (benchmarks/_pydantic_models.py"
        ": aliases, Decimal money, aware datetime); raas 2.2.0: json.loads then "
        "GetOrdersResponseModel / OrderModel.from_dictionary (its real path uses "
        "jsonpickle.decode, slower still); json.loads: plain dicts, no models, floats",
    ]
    return result
