"""One command run in its own process, measured: wall seconds and peak resident memory."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    """The process's own peak resident set (`ru_maxrss` from `wait4`), threads included."""
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
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            process.send_signal(signal.SIGKILL)
            deadline = None
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(seconds, usage.ru_maxrss / 1024, process.returncode, log)


def run_measured(argv: list[str], log: Path, *, cwd: Path | None = None,
                 env: dict | None = None, timeout: float | None = None) -> Measured:
    """Run `argv` to the end, its output (stdout and stderr) in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        return wait_measured(process, started, log, timeout)
