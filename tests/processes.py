"""Processes the crash and chaos tests drive: the sandbox, and the tango-async command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sandbox_process(*args: str) -> Iterator[dict[str, str]]:
    """``python -m tango_async.testing ARGS`` in its own process; yields the TANGO_*
    environment it prints (base URL and credentials)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tango_async.testing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        env = dict(line.strip().split("=", 1) for line in lines[1:] if "=" in line)
        assert env.get("TANGO_BASE_URL", "").startswith("http://127.0.0.1:"), lines
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def started_sandbox(
    *args: str, lines: int = 4
) -> tuple[asyncio.subprocess.Process, list[str], dict[str, str]]:
    """``python -m tango_async.testing ARGS`` started under asyncio: the process, the first
    ``lines`` lines it printed, and the TANGO_* environment among them."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tango_async.testing",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    printed = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(lines)]
    env = dict(line.strip().split("=", 1) for line in printed[1:] if "=" in line)
    return proc, printed, env


def cli_process(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``tango-async ARGS`` (as ``python -m tango_async.cli``) with ``env`` added."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full_env.pop("TANGO_LOG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tango_async.cli", *args],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
