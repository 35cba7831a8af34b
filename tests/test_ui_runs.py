"""Runs tab handlers and the app served on 127.0.0.1, through gradio_client."""
from __future__ import annotations

import pytest

from ffclr.errors import FfclrError
from ui.tabs import runs


def _make_runs(workspace):
    with workspace.open_store() as store:
        finished = store.create_run("pretrain", {"arch": "resnet18", "lr": 0.001},
                                    name=f"run{len(store.runs()) + 1}")
        store.mark_running(finished)
        store.log_metrics(finished, 1, {"loss": 5.0, "views_per_s": 100.0})
        store.log_metrics(finished, 2, {"loss": 4.0, "views_per_s": 120.0})
        folder = workspace.checkpoints / store.run(finished)["name"]
        folder.mkdir(parents=True)
        checkpoint = folder / "checkpoint_0001.pth.tar"
        checkpoint.write_bytes(b"x")
        store.finish_run(finished, "finished", summary={"epochs": 1}, checkpoint=str(checkpoint))
        active = store.create_run("pretrain", {"arch": "resnet50", "lr": 0.01}, name="b")
    return finished, active, checkpoint


def test_runs_table_lists_runs_with_status_and_latest_metrics(workspace):
    finished, active, _ = _make_runs(workspace)
    rows = runs.runs_table(workspace)
    assert [r[0] for r in rows] == [active, finished]
    by_id = {r[0]: r for r in rows}
    assert by_id[finished][4] == "finished" and by_id[active][4] == "queued"
    assert "loss=4" in by_id[finished][7] and "epochs=1" in by_id[finished][7]
    assert runs.runs_table(workspace, "probe") == []


def test_compare_runs_puts_configs_side_by_side(workspace):
    finished, active, _ = _make_runs(workspace)
    rows = {r[0]: r[1:] for r in runs.compare_runs(workspace, finished, active)}
    assert rows["config.arch"] == ["resnet18", "resnet50"]
    assert rows["status"] == ["finished", "queued"]
    assert rows["metric.loss"][0] == "4"
    with pytest.raises(FfclrError):
        runs.compare_runs(workspace, finished, None)


def test_delete_run_needs_confirmation_refuses_active_and_removes_files(workspace):
    finished, active, checkpoint = _make_runs(workspace)
    outside = workspace.root / "keep.txt"
    outside.write_text("keep")
    with pytest.raises(FfclrError, match="confirm"):
        runs.delete_run(workspace, finished, confirmed=False)
    with pytest.raises(FfclrError, match="cancel it first"):
        runs.delete_run(workspace, active, confirmed=True)
    message = runs.delete_run(workspace, finished, confirmed=True)
    assert f"run{finished}" in message
    assert not checkpoint.parent.exists() and outside.exists() and workspace.checkpoints.is_dir()
    with workspace.open_store() as store:
        assert store.run(finished) is None and store.metrics(finished) == []
        assert store.run(active) is not None


def test_deleting_a_probe_run_keeps_the_encoder_checkpoint_it_used(workspace):
    finished, active, checkpoint = _make_runs(workspace)
    probe_dir = workspace.root / "probes" / "run_9"
    probe_dir.mkdir(parents=True)
    (probe_dir / "metrics.csv").write_text("a,b\n")
    with workspace.open_store() as store:
        probe = store.create_run("probe", {"checkpoint": str(checkpoint)})
        store.finish_run(probe, "finished", checkpoint=str(checkpoint),
                         summary={"top1": 0.9, "files": {"csv": str(probe_dir / "metrics.csv")}})
    assert "top1=0.9" in runs.runs_table(workspace, "probe")[0][7]
    runs.delete_run(workspace, probe, confirmed=True)
    assert checkpoint.is_file() and not probe_dir.exists()


def test_deleting_a_run_keeps_a_folder_another_run_shares(workspace):
    finished, active, checkpoint = _make_runs(workspace)
    name = checkpoint.parent.name
    later = checkpoint.parent / "checkpoint_0002.pth.tar"
    later.write_bytes(b"y")
    board = workspace.runs / name
    board.mkdir(parents=True)
    with workspace.open_store() as store:
        resumed = store.create_run("pretrain", {"arch": "resnet18"}, name=name)
        store.finish_run(resumed, "finished", checkpoint=str(later))
        probe = store.create_run("probe", {"checkpoint": str(checkpoint)})
        store.finish_run(probe, "finished", checkpoint=str(checkpoint))
    runs.delete_run(workspace, finished, confirmed=True)
    assert checkpoint.is_file() and later.is_file() and board.is_dir()
    runs.delete_run(workspace, probe, confirmed=True)
    runs.delete_run(workspace, resumed, confirmed=True)
    assert not checkpoint.parent.exists() and not board.exists()


def test_run_checkpoint_for_open_in_explore(workspace):
    finished, active, checkpoint = _make_runs(workspace)
    assert runs.run_checkpoint(workspace, finished) == str(checkpoint.resolve())
    with pytest.raises(FfclrError, match="no checkpoint"):
        runs.run_checkpoint(workspace, active)


@pytest.fixture
def served(workspace):
    from ui.serve import start_app

    demo, url = start_app(workspace)
    yield url
    demo.close()


def test_app_serves_on_localhost_and_answers_gradio_client(workspace, served):
    from gradio_client import Client

    finished, active, _ = _make_runs(workspace)
    assert served.startswith("http://127.0.0.1:")
    client = Client(served, verbose=False)
    table, run_a, run_b = client.predict("", None, None, api_name="/runs_refresh")
    ids = [row[0] for row in table["value"]["data"]]
    assert ids == [active, finished]
    compared, _status = client.predict(finished, active, api_name="/compare_runs")
    assert ["config.arch", "resnet18", "resnet50"] in compared["data"]


def test_compare_shortens_long_values_so_both_runs_stay_in_view(workspace):
    from ui.build import build_app
    from ui_wiring import component

    long_path = str(workspace.root / ("folder-" * 20) / "checkpoint_0001.pth.tar")
    with workspace.open_store() as store:
        first = store.create_run("pretrain", {"data": long_path, "arch": "resnet18"})
        second = store.create_run("pretrain", {"data": "short", "arch": "resnet50"})
    rows = {r[0]: r[1:] for r in runs.compare_runs(workspace, first, second)}
    shown, other = rows["config.data"]
    assert len(shown) <= runs.VALUE_CHARS and shown.endswith("checkpoint_0001.pth.tar")
    assert other == "short" and rows["config.arch"] == ["resnet18", "resnet50"]
    demo = build_app(workspace)
    table = component(demo, "runs-compare-table")
    assert table.wrap and len(table.column_widths) == len(runs.COMPARE_COLUMNS)
    assert component(demo, "runs-kind").choices[0] == ("all kinds", "")


def test_the_delete_message_stays_and_compare_drops_the_deleted_run(workspace):
    """Deleting unpicks the run, whose change handler used to blank the status a moment
    later; the compare table showing the deleted run is cleared."""
    from ui.build import build_app
    from ui_wiring import call, skipped

    finished, active, _ = _make_runs(workspace)
    demo = build_app(workspace)
    table, status, compared = call(demo, "runs-compare", "click", finished, active).values()
    assert ["config.arch", "resnet18", "resnet50"] in table and compared == [finished, active]
    deleted = call(demo, "runs-delete", "click", finished, True, "", compared)
    assert f"Deleted run #{finished}" in deleted["runs-status"]
    assert deleted["runs-a"]["value"] is None and deleted["runs-b"]["value"] is None
    assert finished not in [v for _, v in deleted["runs-a"]["choices"]]
    assert deleted["runs-compare-table"] is None and [] in deleted.values()
    picked = call(demo, "runs-a", "change", None)
    assert skipped(picked["runs-status"]), "the change after a delete blanked its message"
    assert call(demo, "runs-a", "change", active)["runs-status"] == ""
    with workspace.open_store() as store:
        probe = store.create_run("probe", {})
        store.finish_run(probe, "finished")
    unrelated = call(demo, "runs-delete", "click", probe, True, "", [active, active])
    assert skipped(unrelated["runs-compare-table"])
