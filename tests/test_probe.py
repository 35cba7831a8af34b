import json

import numpy as np
import pytest

import ffclr.eval.probe as probe_module
from eval_helpers import clusters, write_checkpoint, write_folder
from ffclr.cli import main
from ffclr.data.cropset import load_crop_set
from ffclr.errors import FfclrError
from ffclr.eval.evaluate import align_classes, run_probe
from ffclr.eval.probe import Probe, fit_probe, focal_loss

NAMES = ["a", "b", "c", "d"]


def test_probe_covers_the_full_class_list_and_untrained_classes_get_zero():
    x, y = clusters([30, 30, 2])
    probe = fit_probe(x, y, NAMES)
    proba = probe.predict_proba(x)
    assert proba.shape == (len(y), 4)
    assert np.allclose(proba.sum(axis=1), 1) and np.all(proba[:, 3] == 0)
    assert np.mean(probe.predict(x) == y) == 1.0
    assert probe.info["C"] in probe_module.C_GRID


def test_cross_validated_macro_f1_leaves_out_a_class_absent_from_training():
    x, y = clusters([20, 20, 20])
    probe = fit_probe(x, y, NAMES)
    assert probe.info["cv_macro_f1"][str(probe.info["C"])] == 1.0
    assert probe.info["cv_top1"][str(probe.info["C"])] == 1.0


def test_class_with_a_single_crop_does_not_break_cross_validation():
    x, y = clusters([20, 20, 1])
    probe = fit_probe(x, y, NAMES[:3])
    assert probe.trained.tolist() == [True, True, True]


def test_saved_probe_is_plain_arrays_and_round_trips(tmp_path):
    x, y = clusters([20, 20, 20])
    probe = fit_probe(x, y, NAMES[:3])
    path = probe.save(tmp_path / "probe")
    assert path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    loaded = Probe.load(path)
    assert loaded.class_names == NAMES[:3] and loaded.info["C"] == probe.info["C"]
    assert np.allclose(loaded.predict_proba(x), probe.predict_proba(x))


def test_pickled_or_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, meta=np.array([{"x": 1}], dtype=object))
    with pytest.raises(FfclrError, match="not a probe"):
        Probe.load(bad)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(FfclrError):
        Probe.load(tmp_path / "text.npz")


def test_feature_dimension_mismatch_is_a_clear_error():
    x, y = clusters([10, 10])
    with pytest.raises(FfclrError, match="8-d"):
        fit_probe(x, y, NAMES[:2]).predict_proba(np.zeros((1, 5)))


def test_adam_probe_with_focal_and_cross_entropy():
    x, y = clusters([40, 40, 40])
    for loss in ("focal", "cross_entropy"):
        probe = fit_probe(x, y, NAMES, method="adam", epochs=60, batch_size=32, loss_fn=loss)
        assert probe.predict_proba(x).shape == (120, 4)
        assert np.mean(probe.predict(x) == y) > 0.9


def test_focal_loss_reduces_to_cross_entropy_at_gamma_zero_and_matches_formula():
    import torch
    import torch.nn.functional as F

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    targets = torch.tensor([0, 2])
    assert focal_loss(logits, targets, 0.0).item() == pytest.approx(F.cross_entropy(logits, targets).item())
    p = torch.softmax(logits, 1)[[0, 1], [0, 2]]
    expected = (-(1 - p) ** 2 * torch.log(p)).mean().item()
    assert focal_loss(logits, targets, 2.0).item() == pytest.approx(expected)


def test_folder_splits_with_different_class_sets_share_one_index(tmp_path, workspace):
    train = load_crop_set(write_folder(tmp_path / "train", {"blue": 2, "green": 2, "red": 2}),
                          workspace)
    test = load_crop_set(write_folder(tmp_path / "test", {"green": 1, "red": 1, "yellow": 1}),
                         workspace)
    assert test.class_names == ["green", "red", "yellow"]
    train_y, test_y, names = align_classes(train, test)
    assert names == ["blue", "green", "red", "yellow"]
    assert [names[i] for i in test_y] == ["green", "red", "yellow"]
    assert [names[i] for i in train_y] == ["blue"] * 2 + ["green"] * 2 + ["red"] * 2


@pytest.fixture
def tiny_splits(tmp_path):
    train = write_folder(tmp_path / "train", {"blue": 8, "green": 8, "red": 8}, seed=1)
    test = write_folder(tmp_path / "test", {"green": 3, "red": 3, "yellow": 2}, seed=2)
    return train, test, write_checkpoint(tmp_path / "ckpt.pth.tar")


def test_selection_sees_only_training_rows_and_ignores_test_labels(tiny_splits, workspace,
                                                                   monkeypatch, tmp_path):
    train_dir, test_dir, ckpt = tiny_splits
    seen = []
    real = probe_module.out_of_fold_proba

    def spy(features, labels, *args, **kwargs):
        seen.append((np.array(features), np.array(labels)))
        return real(features, labels, *args, **kwargs)

    monkeypatch.setattr(probe_module, "out_of_fold_proba", spy)
    train, test = load_crop_set(train_dir, workspace), load_crop_set(test_dir, workspace)
    report = run_probe(train, test, ckpt, workspace)
    from ffclr.eval.embedding import embed_crop_set

    train_x = embed_crop_set(train, ckpt, workspace).features
    assert len(seen) == 1
    assert np.array_equal(seen[0][0], train_x) and np.array_equal(seen[0][1], train.labels)

    shuffled = test.__class__(**{**test.__dict__, "labels": np.random.default_rng(0).permutation(
        test.labels)})
    again = run_probe(train, shuffled, ckpt, workspace)
    assert again.probe.info["C"] == report.probe.info["C"]
    assert np.allclose(again.probe.coef, report.probe.coef)

    m = report.metrics
    assert m["unseen_in_train"] == ["yellow"]
    assert m["per_class"][3]["class"] == "yellow" and m["per_class"][3]["recall"] == 0.0
    assert len(m["confusion"]) == 4


def test_probe_command_with_seed_flags_writes_outputs_and_records_the_run(tiny_splits, workspace,
                                                                          tmp_path, capsys):
    train_dir, test_dir, ckpt = tiny_splits
    out = tmp_path / "out"
    code = main(["probe", "--train_dataset_name", str(train_dir), "--test_dataset_name",
                 str(test_dir), "--checkpoint_path", str(ckpt), "--batch_size", "16",
                 "--workers", "2", "--arch", "resnet18", "--num_classes", "3",
                 "--metrics-json", str(out / "m.json"), "--csv", str(out / "m.csv"),
                 "--save-probe", str(out / "p.npz")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "top-1" in printed and "majority-class baseline" in printed
    metrics = json.loads((out / "m.json").read_text())
    assert {"top1", "top5", "balanced_accuracy", "macro_f1", "n_train", "n_test", "per_class",
            "confusion", "baseline"} <= set(metrics)
    assert all(0 <= metrics[k] <= 1 for k in ("top1", "top5", "balanced_accuracy", "macro_f1"))
    assert metrics["n_train"] == 24 and metrics["n_test"] == 8
    assert Probe.load(out / "p.npz").class_names == ["blue", "green", "red", "yellow"]
    assert (out / "m.csv").read_text().count("\n") == 4 + 1 + 4 + 2
    with workspace.open_store() as store:
        run = store.runs(kind="probe")[0]
    assert run["status"] == "finished" and run["summary"]["top1"] == metrics["top1"]
    assert run["summary"]["files"]["csv"] == str((out / "m.csv").resolve())


def test_probe_command_adam_and_arch_mismatch(tiny_splits, workspace, capsys):
    train_dir, test_dir, ckpt = tiny_splits
    args = ["probe", "--train_dataset_name", str(train_dir), "--test_dataset_name", str(test_dir),
            "--checkpoint_path", str(ckpt)]
    assert main(args + ["--arch", "resnet50"]) == 1
    assert "holds a resnet18" in capsys.readouterr().err
    assert main(args + ["--method", "adam", "--epochs", "3", "--loss_fn", "cross_entropy"]) == 0


def test_stratified_sample_keeps_every_class_and_its_share():
    labels = np.repeat([0, 1, 2], [900, 95, 5])
    rows = probe_module.stratified_sample(labels, 200)
    kept = np.bincount(labels[rows], minlength=3)
    assert np.all(np.diff(rows) > 0) and len(set(rows.tolist())) == len(rows)
    assert kept[0] == 180 and kept[1] == 19 and kept[2] == 5
    assert np.array_equal(probe_module.stratified_sample(labels, 5000), np.arange(1000))


def test_beyond_cv_rows_the_search_and_every_fold_fit_on_samples(monkeypatch):
    x, y = clusters([120, 60, 20], dim=6, spread=0.6)
    fitted_rows = []
    real = probe_module._logistic_path

    def spy(features, *args, **kwargs):
        fitted_rows.append(len(features))
        yield from real(features, *args, **kwargs)

    monkeypatch.setattr(probe_module, "_logistic_path", spy)
    full_c, full_info, full_proba = probe_module.select_c(x, y, 3)
    assert full_info["cv_rows"] == 200 and full_proba.shape == (200, 3)

    monkeypatch.setattr(probe_module, "CV_ROWS", 100)
    fitted_rows.clear()
    c, info, proba = probe_module.select_c(x, y, 3)
    assert info["cv_rows"] == 100 and proba is None and max(fitted_rows) <= 100
    fitted_rows.clear()
    oof = probe_module.out_of_fold_proba(x, y, 3, (c,), fit_rows=100)[c]
    assert oof.shape == (200, 3) and np.allclose(oof.sum(axis=1), 1)
    assert max(fitted_rows) <= 100 and len(fitted_rows) == info["cv_folds"]
    assert (oof.argmax(axis=1) == y).mean() > 0.9

    probe = fit_probe(x, y, ["a", "b", "c"])
    assert fitted_rows[-1] == 200 and (probe.predict(x) == y).mean() > 0.9
