import numpy as np
import pytest
import torch
from PIL import Image

from eval_helpers import COLOURS, symbol, write_checkpoint, write_folder
from ffclr.model.checkpoint import Encoder
from ffclr.eval.classify import build_reference, classify_images, nearest_other_distance
from ffclr.cli import main
from ffclr.data.cropset import load_crop_set
from ffclr.eval.embedding import embed_images
from ffclr.errors import FfclrError
from ffclr.eval.probe import fit_probe


class MeanColour(torch.nn.Module):
    """Features = the mean colour of the ring pixels: an encoder whose answer we know."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        bright = (x.amax(dim=1, keepdim=True) > 0.0).float()
        return (x * bright).sum(dim=(2, 3)) / bright.sum(dim=(2, 3)).clamp(min=1) + 1 + self.anchor


@pytest.fixture
def colour_setup(tmp_path, workspace):
    train = load_crop_set(write_folder(tmp_path / "train", {"red": 6, "green": 6, "blue": 6}),
                          workspace)
    encoder = Encoder(model=MeanColour().eval(), image_size=14, mean=(0.5,) * 3, std=(0.5,) * 3,
                      arch="mean-colour", feature_dim=3)
    features = embed_images(train.paths, encoder)
    probe = fit_probe(features, train.labels, train.class_names)
    reference = build_reference(features, train.labels, train.paths, train.class_names,
                                train.crop_ids)
    return tmp_path, train, encoder, probe, reference


def test_known_and_unknown_symbols_and_per_file_errors(colour_setup):
    tmp_path, train, encoder, probe, reference = colour_setup
    rng = np.random.default_rng(5)
    symbol(COLOURS["red"], rng).save(tmp_path / "red.png")
    symbol(COLOURS["yellow"], rng).save(tmp_path / "yellow.png")
    (tmp_path / "notes.png").write_text("this is not a picture")
    results = classify_images([tmp_path / "red.png", tmp_path / "notes.png", tmp_path / "gone.jpg",
                               tmp_path / "yellow.png"], encoder, probe, reference, top_k=2,
                              n_neighbours=3)
    red, notes, gone, yellow = results
    assert red.error is None and red.label == "red" and not red.unknown
    assert len(red.top) == 2 and red.top[0][1] > red.top[1][1]
    assert [n["class"] for n in red.neighbours] == ["red"] * 3
    assert "not a readable image" in notes.error and str(tmp_path / "notes.png") in notes.error
    assert "no such image file" in gone.error
    assert yellow.unknown and yellow.distance > reference.unknown_distance


def test_training_crop_finds_itself_with_the_training_preprocessing(colour_setup):
    _, train, encoder, probe, reference = colour_setup
    result = classify_images([Image.open(train.paths[3])], encoder, probe, reference)[0]
    assert result.neighbours[0]["path"] == str(train.paths[3])
    assert result.neighbours[0]["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_unknown_threshold_is_a_percentile_of_leave_one_out_distances():
    features = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    nearest = nearest_other_distance(features)
    expected = 1 - np.dot([1.0, 0.0], [1.0, 0.1]) / np.linalg.norm([1.0, 0.1])
    assert nearest == pytest.approx([expected] * 4, rel=1e-4)
    reference = build_reference(features, np.array([0, 0, 1, 1]), list("abcd"), ["x", "y"],
                                percentile=50)
    assert reference.unknown_distance == pytest.approx(expected, rel=1e-4)
    with pytest.raises(FfclrError):
        build_reference(features[:1], np.array([0]), ["a"], ["x"])


def test_unknown_threshold_beyond_the_calibration_rows_comes_from_a_sample_of_them():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 8))
    features[7] = features[3]
    exact = nearest_other_distance(features)
    sampled = nearest_other_distance(features, rows=150, seed=1)
    assert sampled.shape == (150,)
    assert set(np.round(sampled, 6)) <= set(np.round(exact, 6))
    assert np.percentile(sampled, 50) == pytest.approx(np.percentile(exact, 50), rel=0.15)
    with_duplicate = nearest_other_distance(features, rows=399, seed=0)
    assert with_duplicate.min() == pytest.approx(0.0, abs=1e-6)


def test_classify_command_on_a_non_image(tmp_path, workspace, capsys):
    train = write_folder(tmp_path / "train", {"red": 5, "blue": 5})
    ckpt = write_checkpoint(tmp_path / "c.pth.tar")
    assert main(["probe", "--train", str(train), "--test", str(train), "--checkpoint", str(ckpt),
                 "--save-probe", str(tmp_path / "p.npz")]) == 0
    bad = tmp_path / "drawing.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    capsys.readouterr()
    assert main(["classify", str(bad), "--checkpoint", str(ckpt), "--probe",
                 str(tmp_path / "p.npz")]) == 1
    out = capsys.readouterr()
    assert f"skipped: {bad}: not a readable image" in out.out and "Traceback" not in out.err
    good = train / "red" / "red_0.png"
    assert main(["classify", str(good), str(bad), "--checkpoint", str(ckpt), "--probe",
                 str(tmp_path / "p.npz")]) == 0
    out = capsys.readouterr().out
    assert f"{good}: red" in out and "nearest training crops" in out


def test_a_whole_schematic_or_a_blank_image_among_symbols_is_refused_and_named(colour_setup, demo_export):
    tmp_path, train, encoder, probe, reference = colour_setup
    symbol(COLOURS["red"], np.random.default_rng(1)).save(tmp_path / "red.png")
    drawing = sorted((demo_export / "train").glob("*.jpg"))[0]
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    Image.new("RGB", (40, 30), (20, 20, 20)).save(tmp_path / "plain.png")
    red, whole, dot, plain = classify_images(
        [tmp_path / "red.png", drawing, tmp_path / "dot.png", tmp_path / "plain.png"], encoder,
        probe, reference)
    assert red.label == "red"
    assert dot.error.endswith("1 × 1 px of one colour, no strokes: nothing to classify")
    assert "40 × 30 px of one colour" in plain.error and not plain.top
    assert whole.error.startswith(f"{drawing}: a whole schematic") and not whole.top
    assert "Whole schematics" in whole.error
