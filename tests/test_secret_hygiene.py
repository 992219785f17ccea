"""Runs last (see tests/_hygiene.py): across everything the suite logged at DEBUG, every
exception message and repr, and the repr of every decoded model, no platform key, no
Authorization header, no reward credential and no redemption link."""

from __future__ import annotations

from ._hygiene import RECORDER


def test_no_secret_in_logs_errors_or_reprs() -> None:
    assert RECORDER.secrets, "the hygiene plugin registered no secret: is it loaded?"
    assert len(RECORDER.texts) > 100, "too little was recorded to mean anything"
    hits = list(RECORDER.hits())
    print(
        f"\nsecret hygiene: {len(RECORDER.texts)} texts scanned "
        f"({sum(map(len, RECORDER.texts))} characters), {len(RECORDER.secrets)} secrets, "
        f"{len(hits)} hits"
    )
    assert hits == [], hits[:5]


def test_the_scan_would_catch_a_leak() -> None:
    RECORDER.secret("a-planted-secret-value")
    RECORDER.texts.append("tango_async DEBUG oops url=https://x/?k=a-planted-secret-value, ...")
    try:
        assert list(RECORDER.hits())
    finally:
        RECORDER.texts.pop()
        RECORDER.secrets.discard("a-planted-secret-value")
