"""The five tutorials as configs: each builds with its exact parameter count, the space files reuse
them, and `run_baselines` trains them through the trial machinery into one table."""

from __future__ import annotations

import pytest
from conftest import ROOT

from search.errors import InputError
from search.space import load_space, schema, tutorials
from search.space.tutorials import SEEDS
from search.training import models

# S4: 3x3 convs (SAME) of 12 and 16 maps, 3x3/2 pooling 28 -> 13 -> 6, dense 576 -> 288 -> 144 -> 10.
S4_CONVS = (3 * 3 * 1 * 12 + 12) + (3 * 3 * 12 * 16 + 16)
S4_HEAD = (6 * 6 * 16 * 288 + 288) + (288 * 144 + 144) + (144 * 10 + 10)
# With batch norm: no conv or hidden dense bias; gamma, beta, moving mean and variance per channel or unit.
S4_BN = (3 * 3 * 12 + 4 * 12) + (3 * 3 * 12 * 16 + 4 * 16) + (576 * 288 + 4 * 288) + (288 * 144 + 4 * 144) + (144 * 10 + 10)

EXPECTED_PARAMS = {
    "S1": 784 * 10 + 10,
    "S2": (784 * 512 + 512) + (512 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10),
    "S3": (784 * 500 + 500) + (500 * 10 + 10),
    "S4": S4_CONVS + S4_HEAD,
    "S4-aug": S4_BN,
    "S5": (784 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10),
}


@pytest.mark.parametrize("name", list(SEEDS))
def test_every_baseline_builds_with_its_exact_parameter_count(name: str) -> None:
    schema.check_config(SEEDS[name].config, "SEEDS", name)
    assert models.count_params(SEEDS[name].config) == EXPECTED_PARAMS[name]


def test_the_counts_are_the_tutorials() -> None:
    assert EXPECTED_PARAMS == {"S1": 7_850, "S2": 567_434, "S3": 397_510, "S4": 211_106, "S4-aug": 212_486,
                               "S5": 118_282}


def test_tutorial_oddities_are_kept() -> None:
    assert SEEDS["S2"].config["activation"] == "linear" and "dropout" not in SEEDS["S2"].config
    assert SEEDS["S4-aug"].config["augment"] == "shift_flip" and "dubious" in SEEDS["S4-aug"].label
    assert SEEDS["S5"].config["input_scaling"] == "l2_axis1"
    assert {SEEDS[name].config["steps"] for name in ("S1", "S2", "S3")} == {1000, 30_000}


@pytest.mark.parametrize(("space", "names"), [("softmax", ["S1"]), ("mlp", ["S2", "S3", "S5"]),
                                              ("cnn", ["S4"]), ("arch", ["S5"])])
def test_space_files_reuse_the_seed_configs(space: str, names: list[str]) -> None:
    loaded = load_space(ROOT / "spaces" / f"{space}.py")
    assert {label: config for label, config in loaded.baselines.items() if "of 29 epochs" not in label} == {
        SEEDS[name].label: SEEDS[name].config for name in names}


def test_the_cnn_search_runs_s4_aug_cut_short_and_says_so() -> None:
    loaded = load_space(ROOT / "spaces" / "cnn.py")
    label = f"{SEEDS['S4-aug'].label} (3 of 29 epochs)"
    assert loaded.baselines[label] == {**SEEDS["S4-aug"].config, "epochs": 3}
    assert SEEDS["S4-aug"].config["epochs"] == 29  # the tutorial itself is untouched


def test_scaled_multiplies_epochs_or_steps() -> None:
    assert tutorials.scaled(SEEDS["S3"].config, 0.1)["steps"] == 3000
    assert tutorials.scaled(SEEDS["S5"].config, 0.1)["epochs"] == 1  # never below one
    assert tutorials.scaled(SEEDS["S4"].config, 2)["epochs"] == 38


def test_run_baselines_trains_and_tabulates(small_mnist) -> None:
    messages: list[str] = []
    frame = tutorials.run_baselines(small_mnist, ["S1", "S5"], scale=0.2, progress=messages.append)
    assert list(frame.name) == ["S1", "S5"]
    assert list(frame.columns) == ["name", "tutorial", "published", "ours", "delta", "val_accuracy", "epochs",
                                   "steps", "best_epoch", "seconds"]
    s1, s5 = frame.to_dict("records")
    assert s1["steps"] == 200 and s5["steps"] == 63  # 2,000 images: 1 epoch of batch 32
    assert s1["ours"] > 0.8 and s5["ours"] > 0.8
    assert s1["delta"] == pytest.approx(s1["ours"] - 0.92)
    assert any("S5: test" in message for message in messages)
    assert "| S1 " in tutorials.format_table(frame)


def test_unknown_baseline_is_named(small_mnist) -> None:
    with pytest.raises(InputError, match="--only S9: expected one of"):
        tutorials.run_baselines(small_mnist, ["S9"])


def test_baselines_command_prints_the_table(capsys) -> None:
    from search.cli import main

    assert main(["baselines", "--only", "S1", "--scale", "0.2", "--train-size", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| S1 " in out and "92.00%" in out  # our figure beside the published one
    assert main(["baselines", "--only", "S9"]) == 2
