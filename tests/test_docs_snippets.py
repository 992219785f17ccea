"""The docs are tested: every Python snippet of README.md and docs/ is a complete program
(run here against a local sandbox process, as a user would run it) or a marked fragment
(compiled); the install commands name real extras; the pytest plugin leaves a user's
project without warnings; ``seed_orders`` takes ``step`` in seconds as the docs show.

Markers: see tests/docs_support.py (``<!-- fragment -->``, ``<!-- requires: redis -->``).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tango_async as ta
from tango_async.testing import Sandbox

from .docs_support import (
    ROOT,
    SandboxProcess,
    Snippet,
    iter_extras_mentioned,
    markdown_files,
    python_snippets,
    run_program,
    snippets,
)
from .redis_support import redis_for_tests

SNIPPETS = python_snippets()
PROGRAMS = [s for s in SNIPPETS if not s.fragment]
FRAGMENTS = [s for s in SNIPPETS if s.fragment]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])


@pytest.fixture(scope="module")
def sandbox_env() -> Iterator[dict[str, str]]:
    """A local sandbox process for the snippets: no order rate limit on the server (the
    client still paces at 1 TPS), fast webhook retries."""
    with SandboxProcess("--order-rate", "0", "--webhook-retry-delays", "0.05,0.05") as sb:
        yield sb.env


# --- the snippets -----------------------------------------------------------------------------


def test_the_docs_have_snippets_of_both_kinds() -> None:
    files = {s.path.name for s in SNIPPETS}
    assert "README.md" in files and len(files) > 5
    assert len(PROGRAMS) >= 15 and FRAGMENTS


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.id)
def test_every_marker_is_known(snippet: Snippet) -> None:
    assert snippet.marker_problem() is None, snippet.id


def test_no_other_fence_is_python_in_disguise() -> None:
    # a fence without a language, or py3/pycon, would escape the runner
    for path in markdown_files():
        for s in snippets(path):
            assert s.language in {
                "python",
                "bash",
                "console",
                "text",
                "toml",
                "ini",
                "yaml",
                "json",
                "",
            }, f"{s.id}: fence language {s.language!r}"
            if s.language == "":
                assert "import " not in s.code and "async def" not in s.code, s.id


@pytest.mark.parametrize("snippet", FRAGMENTS, ids=lambda s: s.id)
def test_fragments_compile(snippet: Snippet) -> None:
    compile(snippet.code, snippet.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("snippet", PROGRAMS, ids=lambda s: s.id)
def test_programs_are_complete(snippet: Snippet) -> None:
    # a program compiles as a module (no top-level await / async with) and imports what
    # it uses: the run below catches a NameError, this the shape
    tree = ast.parse(snippet.code, snippet.id)
    assert any(isinstance(n, ast.Import | ast.ImportFrom) for n in tree.body), (
        f"{snippet.id}: a complete program imports what it uses (or mark it a fragment)"
    )


@pytest.mark.parametrize("snippet", PROGRAMS, ids=lambda s: s.id)
def test_program_runs(snippet: Snippet, sandbox_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(sandbox_env)
    if "redis" in snippet.requires:
        with redis_for_tests() as url:
            env["REDIS_URL"] = url
            result = run_program(snippet.code, tmp_path, env)
    else:
        result = run_program(snippet.code, tmp_path, env)
    assert result.returncode == 0, (
        f"{snippet.id} failed (exit {result.returncode})\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )


# --- README and packaging ------------------------------------------------------------------


def test_readme_keeps_the_two_fresh_machine_commands() -> None:
    assert 'pip install -e ".[dev]" && pytest' in README  # what .ci/run runs, exactly
    assert 'pip install -e ".[cli]" && tango-async --sandbox local submit' in README


def test_every_extra_is_documented_and_every_documented_extra_exists() -> None:
    install = README.split("## Install", 1)[1].split("\n## ", 1)[0]
    for extra in EXTRAS - {"dev"}:
        assert f"`{extra}`" in install, f"the Install section does not describe {extra!r}"
    for path in markdown_files():
        for extra in iter_extras_mentioned(path.read_text(encoding="utf-8")):
            assert extra in EXTRAS, f"{path.name} names an extra that does not exist: {extra}"


def test_readme_says_it_is_not_on_pypi() -> None:
    assert "not on PyPI" in README


def test_license_is_mit_as_pyproject_says() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PYPROJECT["project"]["license"] == "MIT"
    assert text.startswith("MIT License") and "Copyright (c) 2026 tango-async developers" in text


def test_the_configuration_block_lists_every_argument_of_tangoclient() -> None:
    # the signature as users get it (the test suite's hygiene plugin wraps __init__)
    names = subprocess.run(
        [
            sys.executable,
            "-c",
            "import inspect, tango_async as ta; "
            "print(*inspect.signature(ta.TangoClient.__init__).parameters)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert names[:3] == ["self", "platform_name", "platform_key"]
    block = README.split("## Configuration", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    for name in names[1:]:
        assert f"{name}=" in block, f"Configuration omits {name}"
    for coming in ("on_request", "on_response", "telemetry"):  # issue 16, points 1 and 2
        assert f"{coming}=" in block


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_every_name_the_docs_use_exists_where_they_say(path: Path) -> None:
    # ``ta.X`` is ``tango_async.X``; ``tango_async.mod.X`` is X in that module (or a module)
    text = path.read_text(encoding="utf-8")
    missing = {m.group(0) for m in re.finditer(r"\bta\.(\w+)", text) if not hasattr(ta, m.group(1))}
    for m in re.finditer(r"\btango_async\.([a-z_]+)\.(\w+)", text):
        module = importlib.import_module(f"tango_async.{m.group(1)}")
        if not hasattr(module, m.group(2)):
            try:
                importlib.import_module(m.group(0))
            except ImportError:
                missing.add(m.group(0))
    assert not missing, f"{path.name} names what does not exist: {sorted(missing)}"


def test_names_the_readme_uses_exist_where_it_says() -> None:
    import tango_async.bulk
    import tango_async.redis

    for name in ("BulkJob", "Journal"):
        assert f"ta.{name}" not in README and hasattr(tango_async.bulk, name)
    assert "ta.RateLimiterUnavailableError" not in README
    assert hasattr(tango_async.redis, "RateLimiterUnavailableError")


# --- seed_orders(step=seconds) -----------------------------------------------------------------


START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("step", [300, 300.0, timedelta(minutes=5)])
async def test_seed_orders_takes_seconds_or_a_timedelta(step: object) -> None:
    async with Sandbox() as sb:
        ids = sb.seed_orders(3, start=START, step=step)  # type: ignore[arg-type]
        assert [sb.orders[i]["createdAt"] for i in ids] == [
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:05:00.000Z",
            "2026-01-01T00:10:00.000Z",
        ]


@pytest.mark.parametrize("step", [True, "300", None, float("nan"), float("inf"), 10**400])
async def test_seed_orders_refuses_a_step_that_is_not_seconds(step: object) -> None:
    async with Sandbox() as sb:
        with pytest.raises(ta.ValidationError) as e:
            sb.seed_orders(2, start=START, step=step)  # type: ignore[arg-type]
        assert e.value.field == "step"
        assert sb.orders == {}


# --- the pytest plugin in a user's project ------------------------------------------------------

USER_TEST = """
import pytest
import tango_async as ta

@pytest.mark.asyncio
async def test_thanks_a_customer(tango_client, tango_sandbox):
    order = await tango_client.orders.create(ta.CreateOrderRequest(
        "customer-1", "account-1", "U561593", 25,
        recipient=ta.Recipient(email="ann@example.com", first_name="Ann")))
    assert order.created and len(tango_sandbox.orders) == 1
"""


def run_user_pytest(project: Path, *python_flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "python_flags",
    [(), ("-W", "error"), ("-W", "default")],
    ids=["plain", "python-W-error", "python-W-default"],
)
def test_the_plugin_leaves_a_users_project_without_warnings(
    tmp_path: Path, python_flags: tuple[str, ...]
) -> None:
    # a project with no asyncio configuration at all: pytest-asyncio would warn that
    # asyncio_default_fixture_loop_scope is unset (an error under -W error)
    (tmp_path / "test_service.py").write_text(USER_TEST, encoding="utf-8")
    result = run_user_pytest(tmp_path, *python_flags)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 passed" in out and "warning" not in out.lower(), out


def test_the_plugin_keeps_the_users_own_loop_scope(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
    )
    (tmp_path / "test_service.py").write_text(USER_TEST, encoding="utf-8")
    result = run_user_pytest(tmp_path, "-W", "error")
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "asyncio_default_fixture_loop_scope=function" in out, out
