"""One command run in its own process, measured: wall seconds and peak resident memory."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.02


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float | None
    """The process's own peak resident set (its `VmHWM`, threads included, child processes
    not), read while it runs; None when it ended before the first reading. Not `ru_maxrss`:
    on Linux that includes the parent's resident set at the spawn."""
    exit_code: int
    log: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_line(self) -> str:
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.exit_code}"


def wait_measured(process: subprocess.Popen, started: float, log: Path,
                  timeout: float | None = None) -> Measured:
    """Reap `process` (started at `perf_counter()` `started`), killing it when it runs
    `timeout` seconds longer, and measure it."""
    deadline = None if timeout is None else time.perf_counter() + timeout
    peak_kb = None
    while True:
        peak_kb = _high_water_kb(process.pid) or peak_kb
        pid, status = os.waitpid(process.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            process.send_signal(signal.SIGKILL)
            deadline = None
        time.sleep(POLL_S)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(seconds, None if peak_kb is None else peak_kb / 1024, process.returncode, log)


def _high_water_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_measured(argv: list[str], log: Path, *, cwd: Path | None = None,
                 env: dict | None = None, timeout: float | None = None) -> Measured:
    """Run `argv` to the end, its output (stdout and stderr) in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        return wait_measured(process, started, log, timeout)
