"""The ``tango-async`` command line (needs the ``cli`` extra: click and rich)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Entry point of the ``tango-async`` console script."""
    try:
        from ._app import cli
    except ImportError as e:  # click or rich missing
        sys.stderr.write(
            f"tango-async: the command line needs the 'cli' extra ({e.name} is missing):\n"
            "  pip install 'tango-async[cli]'\n"
        )
        raise SystemExit(2) from None
    cli(prog_name="tango-async")
