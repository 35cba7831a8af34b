"""Pretraining jobs stay bounded: at most $FFCLR_MAX_QUEUED_RUNS runs wait (one more is refused
and leaves no run), a waiting worker has not imported torch, and a worker's log is cut to its
last part when it outgrows $FFCLR_WORKER_LOG_MB."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ffclr.errors import FfclrError
from ffclr.train import jobs
from ffclr.train.config import PretrainConfig


def _queue_runs(workspace, count: int, pid: int) -> None:
    with workspace.open_store() as store:
        for _ in range(count):
            run_id = store.create_run("pretrain", PretrainConfig().to_dict(), status="queued")
            store.update_run(run_id, pid=pid)


def _run_count(workspace) -> int:
    with workspace.open_store() as store:
        return len(store.runs(kind="pretrain"))


def test_one_run_more_than_the_queue_limit_is_refused(workspace, monkeypatch):
    monkeypatch.setenv(jobs.MAX_QUEUED_ENV, "2")
    _queue_runs(workspace, 2, os.getpid())
    with pytest.raises(FfclrError, match=r"2 runs \(pretraining or refits\) are already waiting .*"
                                         r"FFCLR_MAX_QUEUED_RUNS.* is 2"):
        jobs.start_pretrain(workspace, PretrainConfig())
    assert _run_count(workspace) == 2


def test_queued_runs_whose_worker_is_gone_do_not_count(workspace, monkeypatch):
    monkeypatch.setenv(jobs.MAX_QUEUED_ENV, "1")
    _queue_runs(workspace, 1, 2**22 + 12345)
    with workspace.open_store() as store:
        jobs.check_queue_room(store)


@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5"])
def test_limits_from_the_environment_must_be_whole_and_positive(value, monkeypatch):
    monkeypatch.setenv(jobs.MAX_QUEUED_ENV, value)
    with pytest.raises(FfclrError, match="FFCLR_MAX_QUEUED_RUNS"):
        jobs.env_limit(jobs.MAX_QUEUED_ENV, jobs.DEFAULT_MAX_QUEUED)
    monkeypatch.setenv(jobs.MAX_QUEUED_ENV, " ")
    assert jobs.env_limit(jobs.MAX_QUEUED_ENV, 8) == 8


def test_a_waiting_worker_has_not_imported_torch(workspace):
    _queue_runs(workspace, 1, os.getpid())
    script = (
        "import sys\n"
        "import ffclr.train.jobs as jobs\n"
        "def wait(workspace, run_id, lock):\n"
        "    print('torch loaded while waiting:', 'torch' in sys.modules, flush=True)\n"
        "    return False\n"
        "jobs._wait_for_turn = wait\n"
        "from ffclr.cli import main\n"
        f"sys.exit(main(['pretrain', '--run-id', '1', '--workspace', {str(workspace.root)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", script], env=jobs.worker_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "torch loaded while waiting: False"


def test_a_log_over_its_limit_keeps_its_last_part_and_goes_on_appending(tmp_path):
    log_path = tmp_path / "worker-0001.log"
    lines = b"".join(f"step {i:07d}\n".encode() for i in range(200_000))
    with open(log_path, "ab") as worker_output:
        worker_output.write(lines)
        worker_output.flush()
        assert jobs.cap_log(log_path, 2**20)
        worker_output.write(b"after the cut\n")
    text = log_path.read_bytes()
    assert len(text) < 2**20
    assert text.startswith(b"[earlier output removed: this log is kept under 1 MB]\n")
    assert text.endswith(lines[-2**19:] + b"after the cut\n")
    assert b"\0" not in text
    assert not jobs.cap_log(log_path, 2**20)


def test_the_worker_caps_its_log_with_the_limit_from_the_environment(workspace, monkeypatch):
    _queue_runs(workspace, 1, os.getpid())
    monkeypatch.setenv(jobs.LOG_MB_ENV, "1")
    log_path = jobs.worker_log(workspace, 1)
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"x" * 3 * 2**20)
    watched, real_watch = [], jobs.watch_log

    def watch(path, limit):
        watched.append((path, limit))
        return real_watch(path, limit)

    monkeypatch.setattr(jobs, "watch_log", watch)
    monkeypatch.setattr(jobs, "_wait_for_turn", lambda *args: False)
    assert jobs.run_job(workspace, 1) == 1
    assert watched == [(log_path, 2**20)]
    assert log_path.stat().st_size < 2**20
