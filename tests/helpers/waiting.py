"""Waiting on a condition with a deadline: every wait in the tests polls something observable and fails
with what it waited for once the deadline passes, so a slow machine only makes a test slower and a hang
becomes a failure. No test sleeps a fixed time before an assertion."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], what: str = "condition", timeout_s: float = 10.0, interval_s: float = 0.02
) -> T:
    """`check()`'s first truthy value; an AssertionError naming `what` once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not met within {timeout_s:g} s")
        time.sleep(interval_s)


def answers_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when a GET of `url` answers 200 (stdlib only: the serving environment has no httpx)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return answer.status == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def wait_until_serving(
    url: str,
    process: subprocess.Popen | None = None,
    timeout_s: float = 60.0,
    details: Callable[[], str] = lambda: "",
) -> None:
    """Until a GET of `url` answers 200; fails at once if `process` exits first. `details()` (e.g. a log
    tail) is added to either failure."""
    deadline = time.monotonic() + timeout_s
    while not answers_ok(url):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited with code {process.returncode} before {url} answered; {details()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{url} did not answer 200 within {timeout_s:g} s; {details()}")
        time.sleep(0.2)
