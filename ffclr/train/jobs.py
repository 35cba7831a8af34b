"""Background jobs for the UI (pretraining, refits): each run in its own worker process, one at
a time, in order, pretraining and refits in one queue.

`start_pretrain` records a queued run and spawns `python -m ffclr pretrain --run-id N` in the
workspace folder (`start_job` does the same for any of `QUEUED_KINDS`: the worker is the command
of that name, which hands its own work to `run_job`), with an environment (`worker_env`) that
finds this same `ffclr` whether it is installed or a plain checkout; the worker waits until
every earlier queued run has ended (and holds a lock file while it trains), so later jobs queue. `cancel` sets the store's flag,
which the worker checks every step (it then writes a checkpoint and ends as cancelled); `status`
reads the store.

Limits, read from the environment when used: at most `$FFCLR_MAX_QUEUED_RUNS` runs wait at once
(default 8; one more is refused), and a worker keeps its log `runs/worker-NNNN.log` under
`$FFCLR_WORKER_LOG_MB` MB (default 20) by dropping the oldest half when it grows past that. A
waiting worker has not imported torch: it does so when its turn comes.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from ffclr.errors import FfclrError
from ffclr.train.config import PretrainConfig
from ffclr.workspace import Workspace
from store.db import run_alive

LOCK_FILE = ".pretrain.lock"
QUEUED_KINDS = ("pretrain", "refit")
"""Run kinds that share the worker queue; each is also the `python -m ffclr` command that runs
one (with `--run-id N`)."""
POLL_SECONDS = 0.5
MAX_QUEUED_ENV, DEFAULT_MAX_QUEUED = "FFCLR_MAX_QUEUED_RUNS", 8
LOG_MB_ENV, DEFAULT_LOG_MB = "FFCLR_WORKER_LOG_MB", 20
LOG_CHECK_SECONDS = 5.0
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
Work = Callable[[Workspace, int, dict], int]
"""What a worker does once its turn has come: (workspace, run id, stored config) -> exit code."""


def worker_log(workspace: Workspace, run_id: int) -> Path:
    return workspace.runs / f"worker-{run_id:04d}.log"


def worker_env() -> dict[str, str]:
    """This process's environment with `PACKAGE_PARENT` (which holds `ffclr` and `store`) first
    on PYTHONPATH: a worker imports the same code as its parent, whatever its working directory."""
    env = dict(os.environ)
    entries = [str(PACKAGE_PARENT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    return env


def env_limit(name: str, default: int) -> int:
    """A whole number of at least 1 from environment variable `name`, else `default`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise FfclrError(f"{name}={text!r}: give a whole number of at least 1")
    return int(text)


def check_queue_room(store) -> None:
    """Refuse another run when `$FFCLR_MAX_QUEUED_RUNS` runs already wait."""
    limit = env_limit(MAX_QUEUED_ENV, DEFAULT_MAX_QUEUED)
    waiting = [r for kind in QUEUED_KINDS for r in store.runs(kind=kind, status="queued")
               if run_alive(r)]
    if len(waiting) >= limit:
        raise FfclrError(f"{len(waiting)} runs (pretraining or refits) are already waiting (the "
                         f"limit, {MAX_QUEUED_ENV}, is {limit}): wait for one to start or cancel "
                         f"one")


def start_pretrain(workspace: Workspace, config: PretrainConfig) -> int:
    """Queue a run and start its worker process; returns the run id at once."""
    config.validate()
    return start_job(workspace, "pretrain", config.to_dict(), name=config.run_name,
                     dataset_id=dataset_of(workspace, config.data))


def dataset_of(workspace: Workspace, data: str | None) -> int | None:
    """The id of the imported dataset whose crop folder holds `data`, else None."""
    if not data:
        return None
    path = Path(data).resolve()
    with workspace.open_store() as store:
        for row in store.datasets():
            root = Path(row["root"]).resolve()
            if path == root or root in path.parents:
                return row["id"]
    return None


def start_job(workspace: Workspace, kind: str, config: dict, name: str | None = None,
              dataset_id: int | None = None) -> int:
    """Queue a run of `kind` (one of QUEUED_KINDS) and start `python -m ffclr KIND --run-id N`;
    returns the run id at once."""
    assert kind in QUEUED_KINDS, kind
    with workspace.open_store() as store:
        check_queue_room(store)
        run_id = store.create_run(kind, config, name=name, dataset_id=dataset_id,
                                  status="queued")
        log = worker_log(workspace, run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ffclr", kind, "--run-id", str(run_id),
                 "--workspace", str(workspace.root)],
                cwd=workspace.root, env=worker_env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        store.update_run(run_id, pid=proc.pid)
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it: no zombie
    return run_id


def _existing_run(store, run_id: int, workspace: Workspace) -> dict:
    run = store.run(run_id)
    if run is None:
        raise FfclrError(f"no run with id {run_id} in {workspace.root}")
    return run


def cancel(workspace: Workspace, run_id: int) -> None:
    """Ask a queued or running job to stop (a finished one is left alone)."""
    with workspace.open_store() as store:
        run = _existing_run(store, run_id, workspace)
        if run["status"] not in ("queued", "running"):
            return
        store.request_cancel(run_id)
        if not run_alive(run):
            store.finish_run(run_id, "cancelled", checkpoint=run["checkpoint"])


def status(workspace: Workspace, run_id: int) -> dict:
    """The run's row (status, config, summary, checkpoint, error) plus its latest metrics."""
    with workspace.open_store() as store:
        store.mark_interrupted_runs()
        run = _existing_run(store, run_id, workspace)
        if run["status"] == "queued" and not run_alive(run):
            store.finish_run(run_id, "interrupted", error="the queued worker process is gone")
            run = store.run(run_id)
        run["metrics"] = store.latest_metrics(run_id)
    return run


def _wait_for_turn(workspace: Workspace, run_id: int, lock) -> bool:
    """Block until no earlier queued run (of any of QUEUED_KINDS) is active and the lock is
    ours; False if cancelled meanwhile."""
    while True:
        with workspace.open_store() as store:
            store.mark_interrupted_runs()
            if store.cancel_requested(run_id):
                store.finish_run(run_id, "cancelled")
                return False
            earlier = [r for kind in QUEUED_KINDS for r in store.runs(kind=kind)
                       if r["id"] < run_id and r["status"] in ("queued", "running")]
            for run in earlier:
                if run["status"] == "queued" and not run_alive(run):
                    store.finish_run(run["id"], "interrupted",
                                     error="the queued worker process is gone")
                    earlier.remove(run)
        if not earlier:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
        time.sleep(POLL_SECONDS)


def cap_log(path: Path, max_bytes: int) -> bool:
    """When `path` is over `max_bytes`, keep its last `max_bytes // 2` bytes behind a line that
    says so; True if it was cut. The worker writes in append mode, so it goes on at the new
    end."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_bytes:
        return False
    with open(path, "r+b") as log:
        log.seek(size - max_bytes // 2)
        tail = log.read()
        log.seek(0)
        log.write(f"[earlier output removed: this log is kept under "
                  f"{max_bytes / 2**20:g} MB]\n".encode() + tail)
        log.truncate()
    return True


def watch_log(path: Path, max_bytes: int) -> threading.Event:
    """Cap `path` every `LOG_CHECK_SECONDS` in a daemon thread until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(LOG_CHECK_SECONDS):
            cap_log(path, max_bytes)

    threading.Thread(target=loop, daemon=True).start()
    return stop


def run_job(workspace: Workspace, run_id: int, work: Work | None = None) -> int:
    """The worker's side: wait for its turn, then `work(workspace, run_id, config)` (default:
    pretraining with the stored config), recording the outcome."""
    with workspace.open_store() as store:
        run = _existing_run(store, run_id, workspace)
        store.update_run(run_id, pid=os.getpid())
    workspace.root.mkdir(parents=True, exist_ok=True)
    log, log_limit = worker_log(workspace, run_id), env_limit(LOG_MB_ENV, DEFAULT_LOG_MB) * 2**20
    stop_log_watch = watch_log(log, log_limit)
    try:
        with open(workspace.root / LOCK_FILE, "w") as lock:
            if not _wait_for_turn(workspace, run_id, lock):
                return 1
            return (work or _train)(workspace, run_id, run["config"])
    finally:
        stop_log_watch.set()
        cap_log(log, log_limit)


def _train(workspace: Workspace, run_id: int, config: dict) -> int:
    """Import torch (only now that the turn has come), train, and record a failure."""
    from ffclr.train.loop import pretrain

    with failure_recorded(workspace, run_id):
        result = pretrain(PretrainConfig.from_dict(config), workspace, run_id=run_id)
    return 0 if result.status == "finished" else 1


@contextlib.contextmanager
def failure_recorded(workspace: Workspace, run_id: int) -> Iterator[None]:
    """Mark the run failed (with the error) if the body raises while it is queued or running."""
    try:
        yield
    except BaseException as exc:
        with workspace.open_store() as store:
            if store.run(run_id)["status"] in ("queued", "running"):
                message = str(exc) if isinstance(exc, FfclrError) else repr(exc)
                store.finish_run(run_id, "failed", error=message)
        raise
