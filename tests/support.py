"""What every test may lean on: waiting for a condition, and requiring a tool or a server.

- ``wait_until`` (sync) and ``wait_for`` (async) poll a condition until it holds. On timeout they
  fail with an AssertionError naming what was awaited and the last value seen, so a test never
  sleeps as synchronisation and a slow machine only costs time, never a wrong verdict.
- ``in_ci``: CI is the variable ``CI`` set to anything but empty or "false" (any case), the
  same test everywhere.
- ``require`` / ``require_tool``: a missing tool or server skips the test locally, with the
  command that installs it, and fails it in CI, where a skip would hide a test that never ran.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")
_SHOWN_CHARS = 500  # how much of the last value a timeout message shows


def in_ci() -> bool:
    """True when the environment variable CI is set to anything but "" or "false"."""
    return os.environ.get("CI", "").lower() not in ("", "false")


def require(condition: object, *, what: str, install: str) -> None:
    """Skip locally (saying how to install ``what``), fail in CI, unless ``condition`` holds."""
    if condition:
        return
    missing(what=what, install=install)


def missing(*, what: str, install: str) -> NoReturn:
    """``what`` is not available: a failure in CI, a skip with the install command elsewhere."""
    if in_ci():
        pytest.fail(f"{what} is required in CI and missing: {install}", pytrace=False)
    pytest.skip(f"{what} not available (install: {install})")


def require_tool(name_or_path: str | Path, *, install: str) -> str:
    """The path of an executable, by name on PATH or as a path; ``require`` semantics if absent."""
    candidate = str(name_or_path)
    if os.sep in candidate:
        found = candidate if os.access(candidate, os.X_OK) and Path(candidate).is_file() else None
    else:
        found = shutil.which(candidate)
    if found is None:
        missing(what=candidate, install=install)
    return found


def wait_until(
    condition: Callable[[], T | None], *, timeout: float, interval: float = 0.02, what: str
) -> T:
    """Poll ``condition()`` until it returns a true value, and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            _timed_out(what, timeout, last)
        time.sleep(interval)


async def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.02,
    what: str,
) -> Any:
    """``wait_until`` for the event loop: the loop keeps running while it polls; ``condition``
    may be a plain function or a coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        last = await value if inspect.isawaitable(value) else value
        if last:
            return last
        if loop.time() >= deadline:
            _timed_out(what, timeout, last)
        await asyncio.sleep(interval)


def _timed_out(what: str, timeout: float, last: object) -> NoReturn:
    shown = repr(last)
    if len(shown) > _SHOWN_CHARS:
        shown = shown[:_SHOWN_CHARS] + "..."
    raise AssertionError(f"waited {timeout} s for {what}; last seen: {shown}")


def error_reason(error: Any) -> str:
    """The stable hcx reason (google.rpc.ErrorInfo) a refused call carries; "" when none."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def bed_or_skip() -> None:
    """Network-namespace test beds (simulations/netbed.py) need root: skipped without it,
    except in CI as root, where a bed that cannot be made fails the run."""
    import os

    import pytest

    from simulations import netbed

    reason = netbed.available()
    if reason is not None:
        if in_ci() and os.geteuid() == 0:
            pytest.fail(f"the test bed must run in CI as root: {reason}")
        pytest.skip(f"no network namespaces here: {reason}")
