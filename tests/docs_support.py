"""The Python snippets of README.md and docs/**/*.md, and a sandbox process to run them.

A ```` ```python ```` block is a complete program unless the line before its fence (blank
lines aside) is a marker comment:

- ``<!-- fragment -->``: a piece of a program (names defined elsewhere, top-level
  ``await``); it is compiled (top-level ``await`` allowed), never run;
- ``<!-- requires: redis -->``: a complete program that needs a Redis at ``REDIS_URL``
  (the tests give it one, or skip it with the reason);

Any other HTML comment right before a fence is a typo of one of these and fails the tests.
Complete programs run as ``python snippet.py`` in an empty directory, with
``TANGO_BASE_URL`` / ``TANGO_PLATFORM_NAME`` / ``TANGO_PLATFORM_KEY`` pointing at a local
sandbox (:class:`SandboxProcess`), so that ``ta.TangoClient()`` runs unchanged.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")
KNOWN_REQUIREMENTS = frozenset({"redis"})


@dataclass(frozen=True)
class Snippet:
    """One fenced block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None  # the marker comment's body, if any

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.language in ("python", "py", "python3")

    @property
    def fragment(self) -> bool:
        return self.marker == "fragment"

    @property
    def requires(self) -> frozenset[str]:
        if self.marker and self.marker.startswith("requires:"):
            return frozenset(
                r.strip() for r in self.marker.removeprefix("requires:").split(",") if r.strip()
            )
        return frozenset()

    def marker_problem(self) -> str | None:
        """Why the marker is not a known one (None if there is none or it is known)."""
        if self.marker is None or self.fragment:
            return None
        if self.marker.startswith("requires:"):
            unknown = self.requires - KNOWN_REQUIREMENTS
            if not self.requires or unknown:
                return f"unknown requirement(s) {sorted(unknown)} in <!-- {self.marker} -->"
            return None
        return f"unknown marker <!-- {self.marker} --> before a fence"


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def snippets(path: Path) -> list[Snippet]:
    """Every fenced block of ``path`` with the marker comment before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks = m.group("indent"), m.group("ticks")
        info = m.group("info").strip()
        language = info.split()[0].lower() if info else ""
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = lines[i].strip()
            if close.startswith(ticks[0] * len(ticks)) and not close.strip(ticks[0]):
                break
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        marker = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0:
            mm = MARKER.match(lines[j])
            if mm:
                marker = mm.group("body")
        found.append(
            Snippet(path, start + 1, language, textwrap.dedent("\n".join(body)) + "\n", marker)
        )
    return found


def python_snippets() -> list[Snippet]:
    return [s for p in markdown_files() for s in snippets(p) if s.is_python]


class SandboxProcess:
    """``python -m tango_async.testing`` on a free loopback port, as a user runs it."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tango_async.testing", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("TANGO_"):
                name, _, value = line.strip().partition("=")
                self.env[name] = value
                if name == "TANGO_PLATFORM_KEY":
                    break
        if "TANGO_PLATFORM_KEY" not in self.env:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            self._proc.kill()
            raise RuntimeError(f"the sandbox did not start: {err}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()


def run_program(
    code: str, cwd: Path, env: dict[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as ``python snippet.py`` in ``cwd`` with ``env`` added."""
    script = cwd / "snippet.py"
    script.write_text(code, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TANGO_", "REDIS_URL"))}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**clean, **env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def iter_extras_mentioned(text: str) -> Iterator[str]:
    """The extras named in ``pip install`` commands (``.[cli,redis]``, ``tango-async[x]``,
    ``tango_async-*.whl[x]``) of a Markdown text."""
    for m in re.finditer(r"(?:\.|tango-async|\.whl)\[([a-z, ]+)\]", text):
        for extra in m.group(1).split(","):
            yield extra.strip()
