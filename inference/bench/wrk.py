"""HTTP load with `wrk` (Debian package): one POST body for every request, results read from a Lua hook.

wrk's own `--latency` text rounds to two significant digits and changes units; the `done` hook below prints
one machine-readable line (`WRK_RESULT {...}`) with exact microsecond percentiles instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

RESULT_MARK = "WRK_RESULT "
# Single-threaded wrk: the load generator must leave the second core to the servers (see serving.md).
WRK_THREADS = 1

_LUA = """-- written by inference/bench/wrk.py
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)slocal f = assert(io.open("%(body)s", "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "status_errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result line."""


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk not found on PATH: install the Debian package `wrk` (make bench does)")
    return path


def write_script(body_file: Path, script_file: Path, headers: Mapping[str, str] | None = None) -> Path:
    """The Lua script that POSTs `body_file` (with extra `headers`) and reports percentiles."""
    extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items())
    values = {"body": str(body_file.resolve()), "mark": RESULT_MARK, "headers": extra}
    script_file.write_text(_LUA % values)
    return script_file


def parse_output(text: str) -> dict[str, float]:
    """The summary (`requests`, `errors`, `duration_s`, `p50_ms`, `p99_ms`) from wrk's stdout.

    Errors are socket errors plus non-2xx/3xx answers: wrk counts both as requests, so they are taken out.
    """
    for line in text.splitlines():
        if line.startswith(RESULT_MARK):
            raw = json.loads(line.removeprefix(RESULT_MARK))
            errors = int(raw["socket_errors"]) + int(raw["status_errors"])
            return {
                "requests": max(0, int(raw["requests"]) - int(raw["status_errors"])),
                "errors": errors,
                "duration_s": int(raw["duration_us"]) / 1e6,
                "p50_ms": int(raw["p50_us"]) / 1000,
                "p99_ms": int(raw["p99_us"]) / 1000,
            }
    raise WrkError(f"wrk printed no {RESULT_MARK.strip()} line: {text.strip()[-300:]!r}")


def run_wrk(url: str, script: Path, concurrency: int, duration_s: float) -> dict[str, float]:
    """Closed-loop load: `concurrency` connections, each sending its next request when answered."""
    seconds = max(1, round(duration_s))
    command = [
        find_wrk(),
        f"-t{min(WRK_THREADS, concurrency)}",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise WrkError(f"wrk {url} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return parse_output(done.stdout)
