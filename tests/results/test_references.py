"""The tutorials trained as written (results/references.py): `search baselines`, on a real MNIST slice."""

from __future__ import annotations

import pytest

from search.cli import main
from search.errors import InputError
from search.results import references
from search.space.tutorials import TUTORIALS


@pytest.mark.fast
def test_scaled_multiplies_epochs_or_steps() -> None:
    assert references.scaled(TUTORIALS["S3"].config, 0.1)["steps"] == 3000
    assert references.scaled(TUTORIALS["S5"].config, 0.1)["epochs"] == 1  # never below one
    assert references.scaled(TUTORIALS["S4"].config, 2)["epochs"] == 38


def test_run_baselines_trains_and_tabulates(small_mnist) -> None:
    messages: list[str] = []
    frame = references.run_tutorials(small_mnist, ["S1", "S5"], scale=0.2, progress=messages.append)
    assert list(frame.name) == ["S1", "S5"]
    assert list(frame.columns) == ["name", "tutorial", "published", "ours", "delta", "val_accuracy", "epochs",
                                   "steps", "best_epoch", "seconds"]
    s1, s5 = frame.to_dict("records")
    assert s1["steps"] == 200 and s5["steps"] == 63  # 2,000 images: 1 epoch of batch 32
    assert s1["ours"] > 0.8 and s5["ours"] > 0.8
    assert s1["delta"] == pytest.approx(s1["ours"] - 0.92)
    assert any("S5: test" in message for message in messages)
    assert "| S1 " in references.format_table(frame)


@pytest.mark.fast
def test_unknown_baseline_is_named(small_mnist) -> None:
    with pytest.raises(InputError, match="--only S9: expected one of"):
        references.run_tutorials(small_mnist, ["S9"])


def test_baselines_command_prints_the_table(capsys) -> None:

    assert main(["baselines", "--only", "S1", "--scale", "0.2", "--train-size", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| S1 " in out and "92.00%" in out  # our figure beside the published one
    assert main(["baselines", "--only", "S9"]) == 2
