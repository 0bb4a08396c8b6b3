"""`--engine keras-tuner` (keras_tuner.py, keras_tuner_space.py): a space file searched by KerasTuner, recorded where every
command reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from search.cli import main
from search.engines import keras_tuner, keras_tuner_space
from search.errors import SpaceError
from search.space import Choice, count_dimensions, load_space, sample, schema
from search.study import artifacts, stopping, studies
from search.study.record import validation_order
from search.study.studies import load_study

QUICK = ["--train-size", "2000", "--seed", "0"]
CONDITIONAL = """
SPACE = {
    "model": Choice({
        "mlp": {"layers": Repeat(Int(1, 3), {"units": Int(16, 64, log=True)}), "dropout": Float(0.0, 0.3, step=0.1)},
        "cnn": {"conv_blocks": Repeat(Int(1, 2), {"filters": Int(4, 8, log=True), "kernel_size": Choice([3, 5])}),
                "layers": Repeat(Int(0, 1), {"units": Int(16, 32)})},
    }),
    "batch_norm": Choice([False, True]),
    "l2": Choice([0, 1e-5]),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
    "epochs": 3,
}
BASELINES = {"tiny": {"model": "mlp", "layers": [{"units": 16}], "learning_rate": 3e-3, "epochs": 1}}
"""
SPACE_FILES = sorted(Path("spaces").glob("*.py"))


def random_values(hp, seed: int) -> dict:
    """What a KerasTuner oracle draws: a value for every hyperparameter active under the values so far."""
    import keras_tuner as kt

    drawn = kt.HyperParameters()
    for parameter in hp.space:
        drawn.merge([parameter])
        if drawn.is_active(parameter):
            drawn.values[parameter.name] = parameter.random_sample(seed * 1000 + len(drawn.values))
    return dict(drawn.values)


def declared(space: dict):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    return hp, keras_tuner_space.declare(space, hp)


def test_declared_names_are_the_names_sample_asks_for(write_space) -> None:
    space = load_space(write_space(CONDITIONAL)).space
    hp, names = declared(space)
    assert len(names) == len(set(names)) == count_dimensions(space)
    seen: set[str] = set()
    for seed in range(200):
        values = random_values(hp, seed)
        fixed = keras_tuner_space.Fixed(values)
        sample(space, fixed)
        assert set(fixed.params) == set(values)  # exactly the active ones, no more, no fewer
        seen |= set(fixed.params)
    assert seen == set(names)
    assert "model.cnn.conv_blocks.1.filters" in names and "model.mlp.layers.2.units" in names


def test_conditional_space_builds_valid_configs_in_each_branch(write_space) -> None:
    from search.training import models

    space = load_space(write_space(CONDITIONAL)).space
    hp, _ = declared(space)
    built = {"mlp": 0, "cnn": 0}
    for seed in range(30):
        fixed = keras_tuner_space.Fixed(random_values(hp, seed))
        config = sample(space, fixed)
        schema.check_config(config, "<kt>", "")
        assert isinstance(config["batch_norm"], bool)  # KerasTuner holds bools as 0/1: mapped back
        assert config["l2"] in (0, 1e-5) and type(config["l2"]) is (int if config["l2"] == 0 else float)
        assert ("conv_blocks" in config) == (config["model"] == "cnn")
        assert 1 <= len(config.get("conv_blocks") or config["layers"]) <= 3
        assert models.build(config).count_params() > 0
        built[config["model"]] += 1
        optuna.trial.create_trial(params=fixed.params, distributions=fixed.distributions, value=0.5)  # valid for Optuna
    assert min(built.values()) >= 5, built


@pytest.mark.parametrize("path", SPACE_FILES, ids=[p.name for p in SPACE_FILES])
def test_every_space_file_declares_for_every_tuner(path: Path) -> None:
    space = load_space(path)
    for kind in keras_tuner.TUNERS:
        keras_tuner_space.check_space(space, kind, None)
    _, names = declared(space.space)
    assert len(names) == count_dimensions(space.space)


REFUSED = [
    ("None option", """SPACE = {"model": "cnn", "conv_blocks": [{"filters": 8}], "conv_activation": Choice([None, "relu"])}""",
     [], "conv_activation: Choice([None, 'relu']): KerasTuner's Choice cannot hold None"),
    ("searched epochs", """SPACE = {"model": "mlp", "epochs": Int(2, 8)}""",
     [], "epochs: Hyperband sets every trial's epochs itself"),
    ("epochs in a branch", """SPACE = {"model": Choice({"mlp": {"epochs": 3}, "softmax": {}})}""",
     ["--tuner", "hyperband"], "model.mlp.epochs: Hyperband sets every trial's epochs itself"),
]


@pytest.mark.fast
@pytest.mark.parametrize(("body", "extra", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_keras_tuner_cannot_express_is_refused_in_one_line(write_space, tmp_path: Path, capsys, body: str,
                                                                extra: list[str], message: str) -> None:
    space = write_space(body, "refused.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--engine", "keras-tuner", *extra, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {space}: {message}") and err.count("\n") == 1, err
    assert not results.exists()
    if "epochs" in message:  # what Hyperband cannot honour, the other tuners can
        keras_tuner_space.check_space(load_space(space), "bayesian", None)
        keras_tuner_space.check_space(load_space(space), "hyperband", 3)  # --epochs decides for every trial


@pytest.mark.fast
def test_show_says_which_tuners_can_run_a_space(write_space, capsys) -> None:
    assert main(["show", "spaces/arch.py"]) == 0
    assert "engines: optuna; keras-tuner (hyperband, bayesian, random)" in capsys.readouterr().out
    space = write_space(REFUSED[0][1], "none.py")
    assert main(["show", str(space)]) == 0
    assert "keras-tuner (none); refused: conv_activation: Choice([None, 'relu'])" in capsys.readouterr().out


def counted(results: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    from search.study.record import counts_toward_budget

    return [t for t in load_study(name, results).get_trials(deepcopy=False) if counts_toward_budget(t)]


@pytest.mark.parametrize("kind", keras_tuner.TUNERS)
def test_each_tuner_fills_a_study_every_command_reads(kind: str, write_space, tmp_path: Path, capsys,
                                                      small_mnist) -> None:
    from search.training import train

    space = write_space(CONDITIONAL, "cond.py")
    results = tmp_path / "results"
    # Hyperband at max_epochs 3: three 1-epoch models, the best continued to epoch 3, then a 3-epoch model.
    epochs = [] if kind == "hyperband" else ["--epochs", "2"]
    command = ["run", str(space), "--engine", "keras-tuner", "--tuner", kind, "--trials", "6", "--results",
               str(results), "--keep-top", "2", *epochs, *QUICK]
    assert main(command) == 0
    trials = counted(results, "cond")
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    baseline, *searched = trials
    assert baseline.number == 0 and baseline.user_attrs["baseline"] == "tiny"
    assert load_study("cond", results).user_attrs["engine"] == f"keras-tuner/{kind}"
    for t in searched:
        assert t.user_attrs["engine"] == f"keras-tuner/{kind}" and t.user_attrs["seed"] == t.number
        assert 0.2 < t.value == max(t.user_attrs["val_history"]) and 0.2 < t.user_attrs["test_accuracy"] <= 1
        assert set(t.params) <= set(t.distributions) and t.params["model"] == t.user_attrs["config"]["model"]
        assert list(t.intermediate_values.values()) == t.user_attrs["val_history"]
    assert len({t.user_attrs["keras_tuner_trial"] for t in searched}) == 5
    if kind == "hyperband":
        (promoted,) = [t for t in searched if t.user_attrs.get("initial_epoch")]
        parent = trials[promoted.user_attrs["continues"]]
        assert parent.params == promoted.params and parent.user_attrs["epochs"] == 1
        assert promoted.user_attrs["initial_epoch"] == 1 and promoted.user_attrs["epochs"] == 2
        assert list(promoted.intermediate_values) == [1, 2] and promoted.user_attrs["config"]["epochs"] == 3
    else:
        assert all(t.user_attrs["epochs"] == 2 for t in searched)

    board = pd.read_csv(results / "cond" / "leaderboard.csv")
    assert len(board) == 6 and board["test_accuracy"].notna().all() and "tiny" in set(board["baseline"].fillna(""))
    capsys.readouterr()
    assert main(["leaderboard", "cond", "--results", str(results)]) == 0
    assert f"cond (keras-tuner/{kind})" in capsys.readouterr().out
    kept = artifacts.kept(results / "cond")  # the best two by validation; the kept weights are the model tested
    complete = sorted(board[board["state"] == "complete"].itertuples(),
                      key=lambda r: validation_order(r.val_accuracy, r.n_params, r.trial))
    assert [r["trial"] for r in kept] == [r.trial for r in complete[:2]]
    model, record = artifacts.load_model(Path(kept[0]["path"]))
    assert record["test_accuracy"] == pytest.approx(
        train.evaluate(model, small_mnist.test_images, small_mnist.test_labels), abs=0)

    if kind == "hyperband":  # one study, one engine: another tuner or Optuna cannot resume it
        journal = (results / "cond" / "journal.log").read_bytes()
        for other, what in ((["--engine", "keras-tuner", "--tuner", "random"], "keras-tuner/random"),
                            ([], "optuna/tpe+median")):
            assert main(["run", str(space), "--trials", "7", "--results", str(results), *other, *QUICK]) == 2
            assert f"study 'cond' was run with keras-tuner/hyperband, this run is {what}" in capsys.readouterr().err
        assert (results / "cond" / "journal.log").read_bytes() == journal


def test_interrupted_run_resumes_with_exactly_the_missing_trials(write_space, tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    from search.training import train

    space = write_space(CONDITIONAL, "resume.py")
    results = tmp_path / "results"
    command = ["run", str(space), "--engine", "keras-tuner", "--tuner", "random", "--trials", "6", "--epochs", "1",
               "--results", str(results), *QUICK]
    fit, tell = train.fit, optuna.Study.tell

    def stop_at(call: int, real, after: bool = False):
        calls = []

        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == call and not after:
                stopping.request()  # as Ctrl-C does: the training stops at its next safe point
            result = real(*args, **kwargs)
            if len(calls) == call and after:
                raise KeyboardInterrupt  # the process ends right after this call, as if killed
            return result

        return wrapped, calls

    # 1. Ctrl-C while the second searched trial trains: it is recorded interrupted, the rest are kept.
    interrupt, _ = stop_at(3, fit)  # the baseline, KerasTuner trial 0, then trial 1
    monkeypatch.setattr(train, "fit", interrupt)
    assert main(command) == 130
    first = load_study("resume", results).get_trials(deepcopy=False)
    assert [t.state.name for t in first] == ["COMPLETE", "COMPLETE", "FAIL"] and first[2].user_attrs["interrupted"]

    # 2. Stopped after a trial was recorded but before KerasTuner saved that it had finished.
    monkeypatch.setattr(train, "fit", fit)
    interrupt, _ = stop_at(2, tell, after=True)  # trial 1 (run again) is told, then trial 2: stop there
    monkeypatch.setattr(optuna.Study, "tell", interrupt)
    assert main(command) == 130
    assert [t.user_attrs["keras_tuner_trial"] for t in counted(results, "resume")[1:]] == ["0", "1", "2"]

    # 3. Resumed: trial 2 is not trained or recorded again; exactly the two missing trials run.
    monkeypatch.setattr(optuna.Study, "tell", tell)
    counting, fits = stop_at(0, fit)
    monkeypatch.setattr(train, "fit", counting)
    assert main(command) == 0
    done = counted(results, "resume")
    assert len(fits) == 2 and len(done) == 6
    assert [t.user_attrs["keras_tuner_trial"] for t in done[1:]] == ["0", "1", "2", "3", "4"]
    assert [t.number for t in done[:3]] == [t.number for t in first[:2]] + [3]
    assert main(command) == 0 and len(counted(results, "resume")) == 6  # budget met: nothing more runs
    space.write_text(space.read_text().replace("Float(1e-3, 1e-2, log=True)", "Float(1e-4, 1e-2, log=True)"))
    capsys.readouterr()
    assert main([*command[:7], "8", *command[8:]]) == 2  # a study holds the space it began with
    assert "not the space study 'resume' was run with" in capsys.readouterr().err
    assert main([*command[:7], "8", *command[8:], "--accept-space-change"]) == 2  # and KerasTuner's project too
    assert "--accept-space-change: KerasTuner's project holds the space it began with" in capsys.readouterr().err


def test_failing_configs_record_their_reason_and_a_streak_stops_the_run(write_space, tmp_path: Path) -> None:
    space = write_space("""
        SPACE = {
            "model": Choice({
                "cnn": {"conv_blocks": Repeat(Int(1, 2), {"filters": 4}), "optimizer": "sgd",
                        "learning_rate": Float(1e29, 1e30, log=True)},
                "mlp": {"layers": [{"units": 16}], "optimizer": "sgd", "learning_rate": Float(1e29, 1e30, log=True)},
            }),
            "batch_size": 256,
        }
    """, "broken.py")
    results = tmp_path / "results"
    code = main(["run", str(space), "--engine", "keras-tuner", "--tuner", "random", "--trials", "30", "--epochs", "1",
                 "--results", str(results), *QUICK])
    assert code == 1  # ten failures in a row: the space is broken, not one trial
    trials = load_study("broken", results).get_trials(deepcopy=False)
    assert len(trials) == 10 and all(t.state.name == "FAIL" for t in trials)
    reasons = {t.params["model"]: t.user_attrs["reason"] for t in trials}
    assert reasons["cnn"] == reasons["mlp"] == "loss became NaN at epoch 1"
    board = pd.read_csv(results / "broken" / "leaderboard.csv")
    assert (board["state"] == "fail").all() and board["reason"].str.contains("NaN").any()


def test_optuna_runs_record_their_engine_and_keras_tuner_will_not_resume_them(write_space, tmp_path: Path,
                                                                               capsys) -> None:
    space = write_space(CONDITIONAL, "opt.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "1", "--epochs", "1", "--results", str(results), *QUICK]) == 0
    assert load_study("opt", results).user_attrs["engine"] == "optuna/tpe+median"
    capsys.readouterr()
    assert main(["run", str(space), "--engine", "keras-tuner", "--results", str(results), *QUICK]) == 2
    assert "study 'opt' was run with optuna/tpe+median, this run is keras-tuner/hyperband" in capsys.readouterr().err
    study = optuna.create_study()
    for label in ("optuna/tpe+median", "optuna/random+none", "optuna/tpe+median"):
        studies.note_engine(study, label)
    assert study.user_attrs["engine"] == "optuna/tpe+median, optuna/random+none"  # a resume with another sampler


@pytest.mark.fast
def test_fixed_maps_keras_tuner_values_back_to_the_options() -> None:
    fixed = keras_tuner_space.Fixed({"bn": 1, "l2": 0.0, "units": 64.0, "rate": 2.0})
    assert fixed.suggest_categorical("bn", [False, True]) is True  # KerasTuner holds bools as 0/1
    assert fixed.suggest_categorical("l2", [0, 1e-5]) == 0 and type(fixed.params["l2"]) is int
    assert fixed.suggest_int("units", 16, 64) == 64 and fixed.suggest_float("rate", 0.0, 1.0) == 1.0  # clipped
    with pytest.raises(Exception, match="missing: KerasTuner gave no value"):
        fixed.suggest_int("missing", 1, 2)


CHOICES = [
    (Choice(["relu", "selu"]), ["relu", "selu"]),
    (Choice([0, 1e-5]), [0.0, 1e-5]),  # ints among floats: floats, mapped back by `Fixed`
    (Choice([False, True]), [False, True]),
    (Choice([0.0, "1e-4"]), "this one mixes number and str"),
    (Choice([True, 1.5]), "this one mixes bool and number"),
    (Choice([None, "relu"]), "cannot hold None"),
    (Choice([1, 1.0]), "options that are equal as numbers cannot be told apart"),
]


@pytest.mark.fast
@pytest.mark.parametrize(("choice", "expected"), CHOICES, ids=[repr(c) for c, _ in CHOICES])
def test_choice_options_keras_tuner_can_hold(choice: Choice, expected) -> None:
    if isinstance(expected, list):
        assert keras_tuner_space.choice_values(choice, "s.py", "x") == expected
    else:
        with pytest.raises(SpaceError, match=expected):
            keras_tuner_space.choice_values(choice, "s.py", "x")


def test_one_config_through_either_engine_is_recorded_alike(write_space, tmp_path: Path) -> None:
    # Both engines run a trial through the same lifecycle: the same attributes, config, seed and figures.
    space = write_space("""
        SPACE = {"model": "mlp", "layers": [{"units": 32}], "learning_rate": 3e-3, "batch_size": 128, "epochs": 2}
    """, "same.py")
    results = {engine: tmp_path / engine for engine in ("optuna", "keras-tuner")}
    common = ["--trials", "1", "--precision", "float32", *QUICK]
    assert main(["run", str(space), "--results", str(results["optuna"]), "--workers", "1", *common]) == 0
    # KerasTuner's engine trains in the process that runs it: a fresh one, as the Optuna engine's worker is, since
    # TensorFlow picks its CPU kernels once per process (this one may have imported it under other settings).
    subprocess.run([sys.executable, "-m", "search", "run", str(space), "--results", str(results["keras-tuner"]),
                    "--engine", "keras-tuner", "--tuner", "random", *common], check=True, capture_output=True)
    (by_optuna,), (by_keras_tuner,) = (load_study("same", folder).get_trials() for folder in results.values())
    ours = {"engine", "keras_tuner_trial"}  # what names the engine: the rest is the lifecycle's record
    assert set(by_keras_tuner.user_attrs) - ours == set(by_optuna.user_attrs)
    for key in ("config", "seed", "epochs", "best_epoch", "n_params", "precision", "cpu_kernels", "train_size",
                "versions", "threads", "deterministic"):
        assert by_keras_tuner.user_attrs[key] == by_optuna.user_attrs[key], key
    assert by_keras_tuner.state == by_optuna.state == optuna.trial.TrialState.COMPLETE
    for key in ("val_history", "test_accuracy"):  # one seed, one config: the same training, up to float noise
        assert by_keras_tuner.user_attrs[key] == pytest.approx(by_optuna.user_attrs[key], abs=0.01), key
    assert list(by_keras_tuner.intermediate_values.values()) == by_keras_tuner.user_attrs["val_history"]
    assert list(by_optuna.intermediate_values.values()) == by_optuna.user_attrs["val_history"]
