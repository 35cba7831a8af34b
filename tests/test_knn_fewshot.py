import numpy as np
import pytest

import ffclr.eval.fewshot as fewshot
from eval_helpers import clusters
from ffclr.eval.knn import KnnClassifier, choose_k
from ffclr.eval.neighbours import l2_normalise


def test_weighted_vote_by_hand():
    train = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    knn = KnnClassifier.fit(train, np.array([0, 1, 1]), n_classes=3, k=2, temperature=0.5)
    proba = knn.predict_proba(np.array([[2.0, 0.0]]))
    w0, w1 = np.exp((1.0 - 1) / 0.5), np.exp((0.8 - 1) / 0.5)
    assert proba[0] == pytest.approx([w0 / (w0 + w1), w1 / (w0 + w1), 0.0], rel=1e-5)
    order, sims = knn.neighbours(np.array([[0.0, 3.0]]), 2)
    assert order[0].tolist() == [2, 1] and sims[0] == pytest.approx([1.0, 0.6], rel=1e-5)


def test_knn_is_cosine_scale_invariant_and_accurate_on_clusters():
    x, y = clusters([25, 25, 25])
    knn = KnnClassifier.fit(x[::2], y[::2], 3)
    assert np.mean(knn.predict(x[1::2]) == y[1::2]) == 1.0
    assert np.allclose(knn.predict_proba(x[1::2] * 7.0), knn.predict_proba(x[1::2]))
    assert np.allclose(np.linalg.norm(l2_normalise(x), axis=1), 1.0, atol=1e-6)


def test_neighbours_are_the_nearest_rows_in_order_ties_by_lower_index():
    from ffclr.eval.neighbours import cosine_neighbours

    rng = np.random.default_rng(0)
    memory = rng.normal(size=(60, 5)).astype(np.float32)
    memory[[10, 20, 30]] = memory[5]
    for k, leave_one_out in ((1, False), (4, False), (4, True), (59, True)):
        indices, sims = cosine_neighbours(memory, memory, k, leave_one_out=leave_one_out,
                                          chunk=7)
        full = l2_normalise(memory) @ l2_normalise(memory).T
        if leave_one_out:
            np.fill_diagonal(full, -np.inf)
        expected = np.array([sorted(range(60), key=lambda j: (-full[i, j], j))[:k]
                             for i in range(60)])
        assert np.array_equal(indices, expected), (k, leave_one_out)
        assert np.allclose(sims, np.take_along_axis(full, expected, axis=1), atol=1e-5)
    assert cosine_neighbours(memory[5:6], memory, 3)[0][0].tolist() == [5, 10, 20]


def test_a_memory_kept_unit_gives_the_same_neighbours_without_normalising_it(monkeypatch):
    import ffclr.eval.neighbours as neighbours

    x, _ = clusters([20, 20, 20])
    memory = np.asarray(x * np.arange(1, len(x) + 1)[:, None], np.float32)
    expected = neighbours.cosine_neighbours(x[:5] * 3.0, memory, 4)
    unit = l2_normalise(memory)
    normalised = []
    real = neighbours.l2_normalise
    monkeypatch.setattr(neighbours, "l2_normalise",
                        lambda f: normalised.append(len(f)) or real(f))
    found = neighbours.cosine_neighbours(x[:5] * 3.0, unit, 4, unit_memory=True)
    assert normalised == [5], "only the queries are normalised"
    assert np.array_equal(found[0], expected[0])
    assert np.allclose(found[1], expected[1], atol=1e-6)


def test_k_is_chosen_leave_one_out_on_training_rows():
    rng = np.random.default_rng(0)
    big = rng.normal([1.0, 0.0], 0.05, size=(60, 2))
    small = rng.normal([0.9, 0.45], 0.02, size=(4, 2))
    x, y = np.vstack([big, small]), np.array([0] * 60 + [1] * 4)
    k, scores = choose_k(x, y, 2, temperature=1.0)
    assert scores[1] == 1.0 and scores[50] < 1.0
    assert k == 1
    assert KnnClassifier.fit(x, y, 2, temperature=1.0).k == 1


def test_mean_ci95_by_hand():
    mean, half = fewshot.mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)


def test_support_sampling_takes_at_most_shots_per_class():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 1)
    rows = fewshot.sample_support(labels, 5, np.random.default_rng(0))
    assert np.bincount(labels[rows]).tolist() == [5, 3, 1]
    assert len(set(rows.tolist())) == len(rows)


def test_prototypes_give_zero_to_classes_without_support():
    x, y = clusters([5, 5, 5])
    proba = fewshot.prototype_proba(x[y < 2], y[y < 2], x, 4)
    assert proba.shape == (15, 4) and np.all(proba[:, 2:] == 0)
    assert np.all(proba[y < 2].argmax(1) == y[y < 2])


def test_few_shot_on_separable_clusters():
    x, y = clusters([20, 20, 20, 20], seed=3)
    names = list("abcd")
    for shots in (1, 5, 10):
        result = fewshot.few_shot(x[::2], y[::2], x[1::2], y[1::2], names, shots, seeds=4)
        assert result.top1_mean == 1.0 and result.top1_ci95 == 0.0 and result.seeds == 4
    noisy_x, noisy_y = clusters([20, 20, 20, 20], spread=4.0, seed=3)
    one = fewshot.few_shot(noisy_x[::2], noisy_y[::2], noisy_x[1::2], noisy_y[1::2], names, 1, 6)
    ten = fewshot.few_shot(noisy_x[::2], noisy_y[::2], noisy_x[1::2], noisy_y[1::2], names, 10, 6)
    assert one.top1_mean < ten.top1_mean and one.top1_ci95 > 0
    assert "1-shot" in one.line()


def test_per_class_figure_saved_as_html(tmp_path, monkeypatch):
    monkeypatch.setattr(fewshot, "_screenshot", lambda *a: False)
    rows = lambda r: [{"class": "smoke", "recall": r, "support": 3},  # noqa: E731
                      {"class": "absent", "recall": 0.0, "support": 0}]
    figure = fewshot.per_class_figure({"one-shot": rows(0.4), "multi-shot": rows(0.9)})
    assert [trace.name for trace in figure.data] == ["one-shot", "multi-shot"]
    assert list(figure.data[1].x) == ["smoke"] and list(figure.data[1].y) == [0.9]
    written = fewshot.save_figure(figure, tmp_path / "cmp")
    assert written[0] == tmp_path / "cmp.html" and "smoke" in written[0].read_text()


def test_fewshot_command_compares_two_checkpoints(tmp_path, workspace, monkeypatch, capsys):
    from eval_helpers import write_checkpoint, write_folder
    from ffclr.cli import main

    monkeypatch.setattr(fewshot, "_screenshot", lambda *a: False)
    train = write_folder(tmp_path / "train", {"red": 6, "blue": 6, "green": 6}, seed=1)
    test = write_folder(tmp_path / "test", {"red": 3, "blue": 3, "yellow": 2}, seed=2)
    a, b = write_checkpoint(tmp_path / "a.pth.tar", seed=0), write_checkpoint(tmp_path / "b.pth.tar", seed=1)
    assert main(["fewshot", "--checkpoint", str(a), str(b), "--name", "one-shot", "multi-shot",
                 "--train", str(train), "--test", str(test), "--shots", "1", "5", "--seeds", "3",
                 "--figure", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.count(" 1-shot: top-1") == 2 and out.count("kNN (k=") == 2
    html = (tmp_path / "cmp.html").read_text()
    assert "one-shot" in html and "multi-shot" in html and "yellow" in html
