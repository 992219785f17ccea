"""Child processes (servers, workers) and CPU pinning, so a server's CPU never counts
against the client being measured."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

from ._config import ROOT

READY_TIMEOUT = 60.0


def cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(client CPUs, server CPUs): the first usable CPU for the client, the last for the
    server; (None, None) with fewer than two CPUs (then nothing is pinned)."""
    usable = cpus()
    if len(usable) < 2:
        return None, None
    return {usable[0]}, {usable[-1]}


def pin(pid: int, cpu_set: set[int] | None) -> None:
    if cpu_set is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(pid, cpu_set)


@contextlib.contextmanager
def pinned(cpu_set: set[int] | None) -> Iterator[None]:
    """Pin this process to ``cpu_set`` for the duration of the block."""
    if cpu_set is None:
        yield
        return
    before = set(os.sched_getaffinity(0))
    pin(0, cpu_set)
    try:
        yield
    finally:
        pin(0, before)


class Child:
    """``python -m benchmarks.<module> args...`` in its own process; its first stdout line
    is a JSON object (the ready message), read by :meth:`start`. Its stderr goes to a
    temporary file (a pipe nobody reads could fill up and stall it), quoted on failure."""

    def __init__(self, module: str, args: Sequence[str], *, cpu_set: set[int] | None = None):
        self.argv = [sys.executable, "-m", f"benchmarks.{module}", *args]
        self.cpu_set = cpu_set
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self._stderr: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return " ".join(self.argv[2:])

    def start(self) -> dict[str, Any]:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__ / below)
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        pin(self.proc.pid, self.cpu_set)
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT)
        line = self.proc.stdout.readline() if readable else b""  # one line, flushed at once
        if not line:
            self.stop()
            message = f"{self.name} did not start: {self.errors()}"
            self._stderr.close()
            raise RuntimeError(message)
        self.ready = json.loads(line)
        return self.ready

    def errors(self) -> str:
        """The tail of what it wrote to stderr."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def finish(self, timeout: float = 30.0) -> dict[str, Any]:
        """Close its stdin and return the JSON object of its last stdout line."""
        assert self.proc is not None
        out, _ = self.proc.communicate(timeout=timeout)
        lines = out.strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"{self.name} failed: {self.errors()}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def stop(self) -> None:
        """Close its stdin (the signal to exit), then terminate it if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> Child:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()


async def wait_for_stdin_eof() -> None:
    """In a child: return when the parent closes our stdin (or it is not a pipe)."""
    import asyncio

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)
