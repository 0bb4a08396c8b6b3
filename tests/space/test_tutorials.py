"""The five tutorials as configs: each builds with its exact parameter count, the space files reuse
them, and build into models of their exact size."""

from __future__ import annotations

import pytest
from helpers import ROOT

from search.space import load_space, schema
from search.space.tutorials import TUTORIALS

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


@pytest.mark.parametrize("name", list(TUTORIALS))
def test_every_baseline_builds_with_its_exact_parameter_count(name: str) -> None:
    schema.check_config(TUTORIALS[name].config, "TUTORIALS", name)
    from search.training import models

    assert models.build(TUTORIALS[name].config).count_params() == EXPECTED_PARAMS[name]


@pytest.mark.fast
def test_the_counts_are_the_tutorials() -> None:
    assert EXPECTED_PARAMS == {"S1": 7_850, "S2": 567_434, "S3": 397_510, "S4": 211_106, "S4-aug": 212_486,
                               "S5": 118_282}


@pytest.mark.fast
def test_tutorial_oddities_are_kept() -> None:
    assert TUTORIALS["S2"].config["activation"] == "linear" and "dropout" not in TUTORIALS["S2"].config
    assert TUTORIALS["S4-aug"].config["augment"] == "shift_flip" and "dubious" in TUTORIALS["S4-aug"].label
    assert TUTORIALS["S5"].config["input_scaling"] == "l2_axis1"
    assert {TUTORIALS[name].config["steps"] for name in ("S1", "S2", "S3")} == {1000, 30_000}


@pytest.mark.fast
@pytest.mark.parametrize(("space", "names"), [("softmax", ["S1"]), ("mlp", ["S2", "S3", "S5"]),
                                              ("cnn", ["S4", "S4-aug"]), ("arch", ["S5"])])
def test_space_files_compare_with_the_tutorials_as_written(space: str, names: list[str]) -> None:
    loaded = load_space(ROOT / "spaces" / f"{space}.py")
    assert loaded.baselines == {TUTORIALS[name].label: TUTORIALS[name].config for name in names}
