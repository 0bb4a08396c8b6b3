"""The study driver end to end on a real MNIST slice: search, resume, pruning, failures, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import SEARCH_SPACE as SPACE

from search.cli import main
from search.study.record import counts_toward_budget
from search.study.studies import load_study
from search.training import train

QUICK = ["--epochs", "1", "--train-size", "2000", "--seed", "0", "--workers", "1"]  # one worker: repeatable


def trials(results: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return load_study(name, results).get_trials(deepcopy=False)


@pytest.mark.slow
def test_a_trial_left_running_without_a_pid_is_reaped_and_its_place_run(write_space, tmp_path: Path,
                                                                          monkeypatch) -> None:
    from search.study import record, storage

    # A run stopped inside Optuna's `ask` leaves a RUNNING trial that never recorded host and pid.
    space = write_space(SPACE, "small.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "2", "--results", str(results), *QUICK]) == 0
    study = load_study("small", results)
    orphan = study.ask().number
    assert storage.reap_dead(study) == []  # under a minute old: maybe another machine's, just asked
    # Still young when the run starts and when its workers, finding the budget met with it pending,
    # leave (a few seconds): the run waits until it is old enough, then fails it and runs its place.
    monkeypatch.setattr(storage, "ORPHAN_SECONDS", 20.0)
    assert main(["run", str(space), "--trials", "3", "--results", str(results), *QUICK]) == 0
    done = trials(results, "small")
    assert done[orphan].state.name == "FAIL" and record.lost_with_worker(done[orphan])
    assert sum(counts_toward_budget(t) for t in done) == 3 and not [t for t in done if t.state.name == "RUNNING"]


def test_an_orphan_is_timed_by_the_process_that_sees_it_not_by_its_start_stamp(tmp_path: Path, monkeypatch) -> None:
    import datetime
    import time

    from search.study import storage

    # Optuna stamps a trial's start with the local time of the machine that asked for it. One whose
    # clock or time zone is two hours behind makes a trial it asked for a moment ago look two hours
    # old here: it must not be failed before that machine has had time to record its pid.
    study = optuna.create_study(study_name="skew", storage=storage.open_storage(str(tmp_path / "journal.log")))
    skewed = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, params={}, distributions={})
    skewed.datetime_start = datetime.datetime.now() - datetime.timedelta(hours=2)
    study.add_trial(skewed)
    assert storage.reap_dead(study) == [] and storage.orphan_ages(study) < [1.0]
    monkeypatch.setattr(storage, "ORPHAN_SECONDS", 1.0)
    time.sleep(1.2)
    assert storage.orphan_ages(study) >= [1.0]
    assert storage.reap_dead(study) == [0]
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "WAITING"]  # failed, queued again
    assert storage.orphan_ages(study) == []


@pytest.mark.slow
def test_pruner_prunes_weak_trials(write_space, tmp_path: Path) -> None:
    # Half of the configs learn (lr 3e-3), half barely move (lr 1e-6): after five trials the median
    # pruner has a bar the weak ones fall under at their second epoch.
    space = write_space("""
        SPACE = {"model": "mlp", "layers": [{"units": 32}], "learning_rate": Choice([3e-3, 1e-6]),
                 "batch_size": 128, "epochs": 3}
    """, "prune.py")
    results = tmp_path / "results"
    code = main(["run", str(space), "--trials", "10", "--sampler", "random", "--pruner", "median",
                 "--train-size", "1000", "--seed", "1", "--workers", "1", "--results", str(results)])
    assert code == 0
    done = trials(results, "prune")
    pruned = [t for t in done if t.state.name == "PRUNED"]
    assert pruned, [(t.params, t.user_attrs.get("val_history")) for t in done]
    for t in pruned:
        assert t.params["learning_rate"] == 1e-6 and t.user_attrs["epochs"] < 3
        assert t.user_attrs["reason"].startswith("pruned after epoch")
        assert "test_accuracy" not in t.user_attrs  # test data is only touched by finished trials
    board = pd.read_csv(results / "prune" / "leaderboard.csv")
    assert set(board["state"]) >= {"complete", "pruned"}


def halving_run(write_space, tmp_path: Path, name: str, *extra: str) -> Path:
    """8 trials of a space whose PRUNER is halving, 8 epochs each at most, one worker in order: half of
    the configs learn (lr 3e-3), half barely move (lr 1e-6); the results folder."""
    space = write_space("""
        SPACE = {"model": "mlp", "layers": [{"units": 32}], "learning_rate": Choice([3e-3, 1e-6]),
                 "batch_size": 128, "epochs": 8}
        PRUNER = "halving"
    """, f"{name}.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "8", "--sampler", "random", "--train-size", "1000", "--seed", "1",
                 "--workers", "1", *extra, "--results", str(results)]) == 0
    return results


@pytest.mark.slow
def test_successive_halving_stops_weak_trials_at_a_rung_and_lets_the_strong_train_to_the_end(write_space,
                                                                                             tmp_path: Path) -> None:
    # The space's PRUNER: rungs after epochs 2 and 5 of 8. One worker runs the trials in order, so a weak
    # trial that reaches a rung after a strong one is not in its top quarter and stops there.
    results = halving_run(write_space, tmp_path, "halving")
    done = trials(results, "halving")
    states = [(t.params["learning_rate"], t.state.name, t.user_attrs["epochs"]) for t in done]
    assert all(epochs in (2, 5) for _, state, epochs in states if state == "PRUNED"), states
    assert all(epochs == 8 for _, state, epochs in states if state == "COMPLETE"), states
    first_strong = next(i for i, (rate, _, _) in enumerate(states) if rate == 3e-3)
    assert all(state == "PRUNED" and epochs == 2 for rate, state, epochs in states[first_strong:] if rate == 1e-6)
    assert any(rate == 1e-6 for rate, _, _ in states[first_strong:]), states  # the seed gives the test a weak one
    assert load_study("halving", results).user_attrs["engine"] == "optuna/random+halving"


@pytest.mark.slow
def test_min_epochs_moves_every_rung_so_no_trial_is_judged_sooner(write_space, tmp_path: Path) -> None:
    # --min-epochs 3: halving's rungs after epochs 3 and 9 (steps 2 * 4**k), so of 8 epochs only the one
    # after epoch 3; the weak configs (lr 1e-6) that reach it after a strong one stop there, not at 2 or 5.
    results = halving_run(write_space, tmp_path, "later", "--min-epochs", "3")
    states = [(t.params["learning_rate"], t.state.name, t.user_attrs["epochs"]) for t in trials(results, "later")]
    assert [epochs for _, state, epochs in states if state == "PRUNED"] == [3] * sum(
        state == "PRUNED" for _, state, _ in states) and any(state == "PRUNED" for _, state, _ in states), states
    assert all(epochs == 8 for _, state, epochs in states if state == "COMPLETE"), states


def test_a_nan_trial_fails_with_its_reason_and_search_goes_on(write_space, tmp_path: Path) -> None:
    space = write_space("""
        SPACE = {"model": "cnn", "conv_blocks": Repeat(Int(1, 5), {"filters": 4}), "batch_size": 256}
        BASELINES = {
            "exploding": {"model": "mlp", "layers": [{"units": 16}], "optimizer": "sgd", "learning_rate": 1e30},
            "fine": {"model": "cnn", "conv_blocks": [{"filters": 4}], "batch_size": 256},
        }
    """, "broken.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "2", "--results", str(results), *QUICK]) == 0
    done = {t.user_attrs["baseline"]: t for t in trials(results, "broken")}
    assert done["exploding"].state.name == "FAIL"
    assert done["exploding"].user_attrs["reason"] == "loss became NaN at epoch 1"
    assert done["fine"].state.name == "COMPLETE"
    board = pd.read_csv(results / "broken" / "leaderboard.csv")
    assert list(board["baseline"])[0] == "fine" and board["reason"].str.contains("NaN").any()


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_resumes(write_space, tmp_path: Path) -> None:
    space = write_space(SPACE, "interrupt.py")
    results = tmp_path / "results"
    command = [sys.executable, "-m", "search", "run", str(space), "--trials", "50", "--results", str(results),
               "--epochs", "3", "--train-size", "2000", "--seed", "0", "--workers", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    output = []
    for line in process.stdout:  # wait until two trials have finished, then press Ctrl-C
        output.append(line)
        if line.startswith("trial 1 "):
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    output.append(rest)
    assert process.returncode == 130, "".join(output)
    assert "finished trials kept; run the same command to resume" in rest
    done = trials(results, "interrupt")
    finished = [t for t in done if t.state.name == "COMPLETE"]
    assert len(finished) >= 2
    interrupted = [t for t in done if t.user_attrs.get("interrupted")]
    assert all(t.state.name == "FAIL" for t in interrupted) and len(interrupted) <= 1
    assert not [t for t in done if t.state.name == "RUNNING"]
    assert (results / "interrupt" / "leaderboard.csv").exists()

    # Resuming to one more trial than were kept runs exactly one; the interrupted one does not count.
    # The budget counts pruned trials too: with a fast trainer some may finish before Ctrl-C lands.
    from search.study.record import counts_toward_budget

    kept = [t.number for t in done if counts_toward_budget(t)]
    target = len(kept) + 1
    assert main(["run", str(space), "--trials", str(target), "--results", str(results), *QUICK]) == 0
    after = trials(results, "interrupt")
    assert sum(counts_toward_budget(t) for t in after) == target
    assert [t.number for t in after if counts_toward_budget(t)][: len(kept)] == kept
    assert [t.number for t in after if t.state.name == "COMPLETE"][: len(finished)] == [t.number for t in finished]


def test_epochs_override_also_replaces_training_by_steps(write_space, tmp_path: Path) -> None:
    space = write_space("""
        from search.space.tutorials import baselines
        SPACE = {"model": "softmax", "learning_rate": Float(0.1, 0.5)}
        BASELINES = baselines("S1")
    """, "steps.py")
    results = tmp_path / "results"
    assert main(["run", str(space), "--trials", "1", "--results", str(results), *QUICK]) == 0
    (trial,) = trials(results, "steps")
    assert trial.user_attrs["config"]["steps"] == 0 and trial.user_attrs["epochs"] == 1


@pytest.mark.parametrize("prune", [True, False])
def test_baselines_are_reported_but_never_pruned(prune: bool) -> None:
    from search.study.objective import pruning_callback

    # ThresholdPruner(lower=0.99) prunes any epoch under 99%: a searched trial stops at its first
    # epoch, a baseline (prune=False) is only reported, so the pruner still learns from it.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.99))
    trial = study.ask()
    callback = pruning_callback(trial, prune=prune)
    callback.set_params({"epochs": 3})
    if prune:
        with pytest.raises(optuna.TrialPruned):
            callback.on_epoch_end(0, {"val_accuracy": 0.5})
    else:
        for epoch in range(3):
            callback.on_epoch_end(epoch, {"val_accuracy": 0.5 + epoch / 10})
        assert study.trials[0].intermediate_values == {0: 0.5, 1: 0.6, 2: 0.7}


def test_a_pruned_trial_says_why_and_one_judged_again_at_a_rung_it_passed_early_names_that_rung() -> None:
    from search.study.halving import Halving
    from search.study.objective import pruning_callback

    study = optuna.create_study(direction="maximize", pruner=Halving(1, 4))

    def trained(values: list[float]) -> optuna.trial.Trial:
        trial = study.ask()
        callback = pruning_callback(trial)
        callback.set_params({"epochs": 30})
        for epoch, value in enumerate(values):
            callback.on_epoch_end(epoch, {"val_accuracy": value})
        return trial

    first = trained([0.5] * 5)  # alone at the rungs after epochs 2 and 5: let through
    for _ in range(3):  # three better trials reach the first rung
        study.tell(trained([0.9, 0.9]), 0.9)
    callback = pruning_callback(first)
    callback.set_params({"epochs": 30})
    with pytest.raises(optuna.TrialPruned, match=r"^not in the top 1/4 of the 4 trials at epoch 2, judged again "
                                                 r"there once they had reached it$"):
        callback.on_epoch_end(5, {"val_accuracy": 0.5})
    with pytest.raises(optuna.TrialPruned, match=r"^below the pruner's bar$"):  # judged where it stands
        trained([0.1, 0.1])


def test_progress_reports_every_round_against_the_plans_total(small_mnist) -> None:
    from search.space import Space, schema
    from search.study import lifecycle
    from search.study.objective import Objective

    # 45 steps of batch 100 on 2,000 images: 20 steps a round, so three rounds, the last one short.
    config = {"model": "mlp", "layers": [{"units": 16}], "batch_size": 100, "steps": 45}
    seen: list[tuple[int, int, int, float]] = []
    objective = Objective(Space(source="steps.py", space=config, baselines={}, doc=""),
                          lifecycle.Context(small_mnist, on_epoch=lambda *report: seen.append(report)), epochs=None,
                          base_seed=0)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    rounds = train.plan(schema.resolve(config), len(small_mnist.train_images)).rounds
    assert rounds == 3
    assert [(number, done, total) for number, done, total, _ in seen] == [(0, 1, 3), (0, 2, 3), (0, 3, 3)]
    assert all(0.0 < value <= 1.0 for *_, value in seen)


def test_workers_default_to_one_per_core_up_to_four(write_space, tmp_path: Path, capsys) -> None:
    from search.study import workers

    count = workers.default_count()
    assert count == max(1, min(4, len(os.sched_getaffinity(0))))
    space = write_space(SPACE, "small.py")
    assert main(["run", str(space), "--trials", "3", "--results", str(tmp_path / "results"), "--epochs", "1",
                 "--train-size", "2000", "--seed", "0"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert f"10,000 test; {count} workers" in out if count > 1 else "10,000 test; " not in out
    # A worker that asks for a trial past the budget gets one marked surplus, which never runs.
    assert sum(counts_toward_budget(t) for t in trials(tmp_path / "results", "small")) == 3


def test_the_median_pruner_waits_for_five_searched_trials_beyond_the_baselines(tmp_path: Path) -> None:
    from search.study.studies import open_study

    # Three strong baselines and four strong searched trials have finished: a weak trial is still
    # let through, since start-up is 5 searched trials beyond the baselines; after a fifth, it is not.
    location = str(tmp_path / "journal.log")
    study = open_study("startup", location, seed=0)
    for label in ("S2", "S3", "S5"):
        study.add_trial(optuna.trial.create_trial(value=0.98, intermediate_values={0: 0.97, 1: 0.98},
                                                  user_attrs={"baseline": label}))
    verdicts = []
    for searched in range(4, 6):
        while sum(t.state.name == "COMPLETE" for t in study.trials) < 3 + searched:
            study.add_trial(optuna.trial.create_trial(value=0.98, intermediate_values={0: 0.97, 1: 0.98}))
        study = open_study("startup", location)  # as a worker opens it
        trial = study.ask()
        trial.report(0.5, 0)
        trial.report(0.5, 1)
        verdicts.append(bool(trial.should_prune()))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert verdicts == [False, True]
