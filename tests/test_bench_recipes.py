"""`python -m ffclr bench recipes`: recipe parsing and one tiny end-to-end run on demo data."""
import json

import pytest

from ffclr.benchmarks.recipes import parse_recipe
from ffclr.cli import main
from ffclr.errors import FfclrError


def test_recipe_settings_take_the_types_of_the_config_fields():
    name, settings = parse_recipe("hot:temperature=0.5,lr=2e-3,image-size=64,bf16=false,augment=seed")
    assert name == "hot"
    assert settings == {"temperature": 0.5, "lr": 2e-3, "image_size": 64, "bf16": False,
                        "augment": "seed"}
    assert parse_recipe("default:") == ("default", {})


@pytest.mark.parametrize("text, message", [
    ("nocolon=1", "write NAME:KEY=VALUE"),
    (":lr=1", "write NAME:KEY=VALUE"),
    ("x:colour=red", "not KEY=VALUE"),
    ("x:epochs=many", "epochs='many' is not a number"),
])
def test_bad_recipes_name_the_setting(text, message):
    with pytest.raises(FfclrError, match=message):
        parse_recipe(text)


def test_tiny_run_reports_train_cv_and_valid_scores(demo_export, tmp_path, capsys):
    out = tmp_path / "recipes.json"
    assert main(["bench", "recipes", "--export", str(demo_export), "--epochs", "1",
                 "--recipe", "tiny:image_size=16,batch_size=32,arch=resnet18", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["recipe"] for r in rows] == ["tiny"]
    row = rows[0]
    assert row["settings"] == {"image_size": 16, "batch_size": 32, "arch": "resnet18"}
    assert row["epochs"] == 1
    for key in ("cv_macro_f1", "cv_top1", "top1", "macro_f1", "balanced_accuracy"):
        assert 0.0 <= row[key] <= 1.0
    assert "| tiny | image_size=16, batch_size=32, arch=resnet18 | 1 |" in capsys.readouterr().out
