"""``python -m signup_service``: serve the sign-up service.

On SIGNUP_HOST:SIGNUP_PORT (default 127.0.0.1:8000), ordering through the Tango platform
of TANGO_PLATFORM_NAME / TANGO_PLATFORM_KEY at TANGO_BASE_URL (see ``app.py`` for the
SIGNUP_* reward settings).
"""

from __future__ import annotations

import logging
import os

from aiohttp import web

from .app import create_app


def main() -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    web.run_app(
        create_app(),
        host=os.environ.get("SIGNUP_HOST", "127.0.0.1"),
        port=int(os.environ.get("SIGNUP_PORT", "8000")),
    )


if __name__ == "__main__":
    main()
