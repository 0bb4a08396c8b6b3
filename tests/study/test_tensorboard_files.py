"""TensorBoard's view of a study: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from helpers import SMALL_SPACE
from rich.console import Console

from search.cli import main
from search.study import tensorboard_files
from search.study.record import Attr


@pytest.mark.fast
def test_a_config_flattens_into_one_scalar_per_dotted_key() -> None:
    config = {"model": "mlp", "layers": [{"units": 64}, {"units": 32}], "optimizer": "sgd", "momentum": 0.9,
              "augment": None, "ema": False, "input_shape": [28, 28]}
    assert tensorboard_files.flatten(config) == {
        "model": "mlp", "layers.count": 2, "layers.0.units": 64, "layers.1.units": 32, "optimizer": "sgd",
        "momentum": 0.9, "augment": "None", "ema": False, "input_shape": "[28, 28]"}
    assert tensorboard_files.hparams({"layers": []}, None, "pruned") == {"layers": "[]", "baseline": "",
                                                                         "state": "pruned"}


@pytest.mark.fast
@pytest.mark.parametrize("command", [["run", "SPACE"], ["worker", "--study", "small"], ["confirm", "small"]])
def test_a_tensorboard_folder_under_a_file_is_one_line_exit_2_and_nothing_is_written(
        write_space, tmp_path: Path, capsys, command: list[str]) -> None:
    pytest.importorskip("tensorboard")
    space = write_space(SMALL_SPACE, "small.py")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    results = tmp_path / "results"
    argv = [str(space) if part == "SPACE" else part for part in command]
    assert main([*argv, "--results", str(results), "--tensorboard", str(notes / "tb")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --tensorboard {notes / 'tb'}: not a folder ({notes} is a file)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "small.py"]


@pytest.mark.fast
@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_tensorboard_folder_is_one_line_exit_2(write_space, tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorboard")
    space = write_space(SMALL_SPACE, "small.py")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["run", str(space), "--results", str(tmp_path / "results"), "--tensorboard", str(locked / "tb")]) == 2
    assert capsys.readouterr().err == f"error: --tensorboard {locked / 'tb'}: {locked} is not writable\n"
    assert not (tmp_path / "results").exists() and not (locked / "tb").exists()


def test_a_search_writes_every_trials_curves_and_hparams_that_tensorboard_reads_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    from search.run import SearchOptions, run_search
    from search.study.studies import load_study

    space = tmp_path / "small.py"
    space.write_text(SMALL_SPACE)  # a baseline whose loss diverges (failed), a tutorial, a searched trial
    results, board = tmp_path / "results", tmp_path / "tb"
    options = SearchOptions(str(space), trials=3, epochs=2, train_size=2000, seed=0, workers=1, results=str(results),
                            tensorboard=str(board))
    assert run_search(options, Console(file=io.StringIO())) == 0
    trials = load_study("small", results).get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]

    def read(folder: Path) -> EventAccumulator:
        return EventAccumulator(str(folder)).Reload()

    def content(accumulator: EventAccumulator, tag: str) -> bytes:
        return accumulator.PluginTagToContent(metadata.PLUGIN_NAME)[tag]

    experiment = metadata.parse_experiment_plugin_data(content(read(board), metadata.EXPERIMENT_TAG))
    declared = {info.name for info in experiment.hparam_infos}
    assert {"layers.0.units", "layers.1.units", "layers.count", "learning_rate", "batch_size", "model", "baseline",
            "state", "optimizer"} <= declared  # the space's keys and its baselines'
    assert [m.name.tag for m in experiment.metric_infos] == list(tensorboard_files.METRICS)

    assert sorted(p.name for p in board.glob("trial-*")) == ["trial-00000", "trial-00001", "trial-00002"]
    for trial in trials:
        run = read(board / f"trial-{trial.number:05d}")
        history = trial.user_attrs.get(Attr.VAL_HISTORY, [])
        tags = run.Tags()["scalars"]
        for tag in ("loss", "val_accuracy"):  # one value per epoch trained, at steps 1, 2, ...
            events = run.Scalars(tag) if tag in tags else []
            assert [e.step for e in events] == list(range(1, len(history) + 1)), (trial.number, tag)
        if history:
            assert [e.value for e in run.Scalars("val_accuracy")] == pytest.approx(history)
        start = metadata.parse_session_start_info_plugin_data(content(run, metadata.SESSION_START_INFO_TAG))
        values = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                  for name, value in start.hparams.items()}
        config = trial.user_attrs[Attr.CONFIG]
        assert values["state"] == ("complete" if trial.state.name == "COMPLETE" else "failed")
        assert start.group_name == f"{trial.number:05d} {values['state']}"  # the table's first column
        assert values["baseline"] == trial.user_attrs.get(Attr.BASELINE, "")
        assert values["model"] == config["model"]
        if "layers" in config:
            assert values["layers.count"] == len(config["layers"])
        final = {tag: run.Scalars(tag)[-1].value for tag in tensorboard_files.METRICS if tag in tags}
        assert final["final/epochs"] == len(history)
        if trial.state.name == "COMPLETE":
            assert len(history) == 2 and values["learning_rate"] == pytest.approx(config["learning_rate"])
            assert final["final/val_accuracy"] == pytest.approx(trial.value)
            assert final["final/test_accuracy"] == pytest.approx(trial.user_attrs[Attr.TEST_ACCURACY])
            assert final["final/test_accuracy"] > 0.5  # chance is 0.1
        else:
            assert "final/test_accuracy" not in final
