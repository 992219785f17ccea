"""What the CLI prints to a terminal holds no raw control character (issue 12, point 3).

Server text (an error message, an i18n key) reaches the bulk summary and the CLI's error
lines; an ANSI escape sequence or a bare CR in it could clear the screen or rewrite the
line the user reads ("0 failed"). Each such character is shown escaped instead.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tango_async._logs import escape_lines
from tango_async.bulk._report import _short
from tango_async.cli import _common


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if c != "\n" and not c.isprintable()]


def test_escape_lines_keeps_line_breaks_and_escapes_the_rest() -> None:
    assert escape_lines("plain\ntext") == "plain\ntext"
    out = escape_lines("ok line\n\x1b[2J\rall 0 failed")
    assert out.split("\n")[0] == "ok line"
    assert "\x1b" not in out and "\r" not in out and "\\x1b" in out


def test_summary_cells_are_escaped() -> None:
    assert "\x1b" not in _short("boom \x1b[31mred\x1b[0m")
    assert "\r" not in _short("a\rb", 60)


def test_echo_err_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    _common.echo_err("error: POST /orders: \x1b]0;owned\x07 \u2028forged")
    err = capsys.readouterr().err
    assert _raw_controls(err) == []
    assert "owned" in err


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text())
def test_property_no_raw_control_character_reaches_the_terminal(text: str) -> None:
    assert _raw_controls(escape_lines(text)) == []
    assert _raw_controls(_short(text)) == []
