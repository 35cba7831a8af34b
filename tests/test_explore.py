import os

import numpy as np

import ffclr.eval.explore as explore
from eval_helpers import clusters, write_checkpoint, write_folder
from ffclr.cli import main
from ffclr.data.cropset import load_crop_set
from ffclr.eval.embedding import embed_crop_set


def test_far_crop_has_the_top_outlier_scores():
    x, _ = clusters([30, 30], dim=6)
    x[7] = -x[7] * 5 + 40
    distance, ood = explore.outlier_scores(x, k=5)
    assert distance.argmax() == 7 and ood.argmin() == 7
    assert np.all(distance >= 0) and np.all((ood >= 0) & (ood <= 1))


def test_ood_score_is_cleanlabs_on_the_same_neighbours():
    import warnings

    from cleanlab.outlier import OutOfDistribution

    from ffclr.eval.neighbours import l2_normalise

    x, _ = clusters([40, 40, 40], dim=8, spread=0.8)
    x[5] = x[5] * 4 + 3
    _, ood = explore.outlier_scores(x, k=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = OutOfDistribution(params={"k": 10}).fit_score(features=l2_normalise(x),
                                                                 verbose=False)
    assert np.allclose(ood, expected, atol=1e-5)


def test_label_issues_beyond_cv_rows_score_every_crop(monkeypatch):
    import ffclr.eval.probe as probe_module

    x, y = clusters([60, 60, 60], dim=6, spread=0.5)
    given = y.copy()
    given[[4, 70]] = (y[[4, 70]] + 1) % 3
    monkeypatch.setattr(probe_module, "CV_ROWS", 90)
    issues = explore.label_issues(x, given, 3)
    assert issues.proba.shape == (180, 3) and issues.quality.shape == (180,)
    assert set(np.argsort(issues.quality)[:2].tolist()) == {4, 70}


def test_flipped_labels_are_found_and_the_true_class_suggested():
    x, y = clusters([40, 40, 40], dim=6, spread=0.5)
    given = y.copy()
    flipped = np.array([3, 45, 90])
    given[flipped] = (y[flipped] + 1) % 3
    issues = explore.label_issues(x, given, 4)
    assert issues.proba.shape == (120, 4)
    flagged = set(np.flatnonzero(issues.is_issue).tolist())
    assert len(flagged) >= 2 and flagged <= set(flipped.tolist())
    assert np.argsort(issues.quality)[:3].tolist() == sorted(flipped.tolist(),
                                                             key=lambda i: issues.quality[i])
    assert np.array_equal(issues.suggested[flipped], y[flipped])
    distance, _ = explore.outlier_scores(x)
    assert set(explore.suspicion_order(issues, distance)[:3].tolist()) == set(flipped.tolist())


def test_embeddings_cached_and_recomputed_when_a_crop_changes(tmp_path, workspace):
    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 4, "blue": 4}), workspace)
    ckpt = write_checkpoint(tmp_path / "ckpt.pth.tar")
    first = embed_crop_set(crops, ckpt, workspace)
    assert first.features.shape == (8, 512) and not first.cached
    assert first.cache_file.parent == workspace.cache / "embeddings"
    second = embed_crop_set(crops, ckpt, workspace)
    assert second.cached and np.array_equal(second.features, first.features)
    changed = crops.paths[4]
    assert changed.name == "red_0.png"
    changed.write_bytes(crops.paths[0].read_bytes())
    os.utime(changed, ns=(1, 1))
    other = embed_crop_set(crops, write_checkpoint(tmp_path / "other.pth.tar"), workspace)
    first.cache_file.with_suffix(".umap.npy").write_bytes(b"layout of the old crops")
    third = embed_crop_set(crops, ckpt, workspace)
    assert not third.cached and third.key != first.key
    assert np.allclose(third.features[0], third.features[4], atol=1e-5)
    assert not first.cache_file.exists() and not first.cache_file.with_suffix(".umap.npy").exists()
    assert third.cache_file.is_file() and other.cache_file.is_file()


def test_features_of_another_precision_are_another_cache_entry(tmp_path, workspace,
                                                               monkeypatch):
    import ffclr.model.embed as embed

    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 4, "blue": 4}), workspace)
    ckpt = write_checkpoint(tmp_path / "ckpt.pth.tar")
    monkeypatch.setattr(embed, "cpu_bf16_supported", lambda: False)
    full = embed_crop_set(crops, ckpt, workspace)
    monkeypatch.setattr(embed, "cpu_bf16_supported", lambda: True)
    bf16 = embed_crop_set(crops, ckpt, workspace)
    assert not bf16.cached and bf16.key != full.key
    assert not np.allclose(bf16.features, full.features, atol=1e-4)
    assert np.linalg.norm(bf16.features - full.features) < 0.02 * np.linalg.norm(full.features)
    assert embed_crop_set(crops, ckpt, workspace).cached


def test_umap_layout_is_cached_beside_the_embeddings(tmp_path, workspace, monkeypatch):
    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 6, "blue": 6}), workspace)
    embeddings = embed_crop_set(crops, write_checkpoint(tmp_path / "c.pth.tar"), workspace)
    calls = []
    monkeypatch.setattr(explore, "umap_2d", lambda f: calls.append(1) or f[:, :2] * 2)
    layout = embeddings.umap(workspace)
    assert np.array_equal(layout, embeddings.features[:, :2] * 2)
    assert np.array_equal(embeddings.umap(workspace), layout) and len(calls) == 1


def test_explore_command_lists_suspicious_crops(tmp_path, workspace, capsys):
    crops = write_folder(tmp_path / "crops", {"red": 6, "blue": 6, "green": 6})
    ckpt = write_checkpoint(tmp_path / "c.pth.tar")
    assert main(["explore", "--checkpoint", str(ckpt), "-data", str(crops), "--top", "4",
                 "--csv", str(tmp_path / "scores.csv")]) == 0
    out = capsys.readouterr().out
    assert "18 crops" in out and out.count(str(crops)) == 4
    assert (tmp_path / "scores.csv").read_text().count("\n") == 19


def test_a_split_is_read_from_the_cached_features_of_the_whole_dataset(
        workspace, demo_export, tiny_checkpoint, monkeypatch):
    import ffclr.eval.embedding as embedding
    from ffclr.data.coco_import import import_export
    from ffclr.data.cropset import load_dataset_split

    import_export(demo_export, "demo", workspace)
    whole = embed_crop_set(load_dataset_split("demo", None, workspace), tiny_checkpoint,
                           workspace)
    valid_set = load_dataset_split("demo", "valid", workspace)
    computed = []
    real_embed = embedding._embed_crops
    monkeypatch.setattr(embedding, "_embed_crops",
                        lambda *args: computed.append(len(args[0])) or real_embed(*args))
    valid = embed_crop_set(valid_set, tiny_checkpoint, workspace)
    assert computed == [] and valid.cached and valid.cache_file == whole.cache_file
    row_of = {str(p): i for i, p in enumerate(whole.crop_set.paths)}
    assert np.array_equal(valid.features,
                          whole.features[[row_of[str(p)] for p in valid_set.paths]])
    assert valid.umap(workspace).shape == (len(valid_set), 2)

    train_crop = load_dataset_split("demo", "train", workspace).paths[0]
    os.utime(train_crop, ns=(1, 1))
    again = embed_crop_set(valid_set, tiny_checkpoint, workspace)
    assert computed == [len(valid_set)] and not again.cached
    assert np.allclose(again.features, valid.features, atol=1e-5)


def test_the_encoder_runs_frozen_only_for_enough_crops(tmp_path, workspace, monkeypatch):
    import torch

    import ffclr.eval.embedding as embedding
    import ffclr.model.embed as embed
    from ffclr.model.checkpoint import load_encoder

    crops = load_crop_set(write_folder(tmp_path / "crops", {"red": 4, "blue": 4}), workspace)
    ckpt = write_checkpoint(tmp_path / "c.pth.tar")
    few = load_encoder(ckpt)
    monkeypatch.setattr(embed, "cpu_bf16_supported", lambda: False)
    monkeypatch.setattr(embedding, "FROZEN_MIN_CROPS", 9)
    features = embed_crop_set(crops, ckpt, workspace, encoder=few).features
    assert few.model not in embed._frozen_copies
    many = load_encoder(ckpt)
    monkeypatch.setattr(embedding, "FROZEN_MIN_CROPS", 8)
    frozen = embedding._embed_crops(crops, many, workspace, 4, None)
    assert isinstance(embed._frozen_copies[many.model][None], torch.jit.ScriptModule)
    assert np.allclose(frozen, features, atol=1e-4)
