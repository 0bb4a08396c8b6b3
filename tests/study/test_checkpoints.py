"""A trial keeps its progress while it trains: one run again after its worker died, or after Ctrl-C,
continues from the epoch it reached (its curve carried over and reported to the pruner first), and a
trial that ends on its own leaves nothing behind. On real MNIST slices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from search.study import lifecycle, record, stopping
from search.study.objective import OptunaReporter
from search.study.record import counts_toward_budget
from search.study.storage import open_storage
from search.training import checkpoint

pytestmark = pytest.mark.slow

CONFIG = {"model": "mlp", "layers": [{"units": 32}], "epochs": 8, "batch_size": 128, "schedule": "cosine"}
# Wide enough that an epoch takes a good fraction of a second, so a test can act between epochs.
SPACE = """
SPACE = {
    "model": "mlp",
    "layers": [{"units": 1024}, {"units": 1024}],
    "learning_rate": Float(1e-3, 3e-3, log=True),
    "batch_size": 64,
    "schedule": "cosine",
}
"""
RUN = ["--epochs", "30", "--train-size", "4000", "--seed", "0", "--workers", "1", "--pruner", "none", "--trials", "1"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_an_interrupted_trial_is_continued_by_its_retry_from_the_epoch_it_reached(small_mnist, tmp_path: Path) -> None:
    epochs: list[tuple[int, int, int]] = []

    def on_epoch(number: int, done: int, total: int, val_accuracy: float) -> None:
        epochs.append((number, done, total))
        if number == 0 and done == 3:
            stopping.request()  # as Ctrl-C would: acted on within the fourth epoch

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    context = lifecycle.Context(small_mnist, study="resumed", study_dir=tmp_path, keep=0, on_epoch=on_epoch)
    first = study.ask()
    stopped = lifecycle.run(lifecycle.Assignment(first.number, CONFIG, 0), context, OptunaReporter(first))
    folder = tmp_path / lifecycle.PROGRESS / "0"
    assert stopped.state == "interrupted" and stopped.progress == folder
    kept = checkpoint.load(folder)
    assert kept is not None and kept.rounds_done == 3
    assert kept.optimizer[0] == 3 * 16  # the optimizer's step count: 16 batches of 128 in 2,000 images a round

    stopping.reset()
    retry = study.ask()
    outcome = lifecycle.run(lifecycle.Assignment(retry.number, CONFIG, 0, resumes=first.number), context,
                            OptunaReporter(retry))
    assert outcome.state == "complete", outcome.reason
    done = study.trials[retry.number]
    history = done.user_attrs["val_history"]
    assert done.user_attrs["resumed_at"] == 3 and len(history) == 8
    assert history[:3] == first.user_attrs["val_history"]  # carried over, not trained again
    assert [done for number, done, total in epochs if number == retry.number] == [4, 5, 6, 7, 8]
    assert sorted(done.intermediate_values) == list(range(8))  # the pruner sees the whole curve
    assert [done.intermediate_values[step] for step in range(3)] == history[:3]
    assert not folder.exists() and not (tmp_path / lifecycle.PROGRESS / "1").exists()

    # Weights, optimizer state, schedule step and order of examples all went on where they were: the
    # same seed trained in one go ends on the same curve (this model has no dropout or augmentation).
    whole = study.ask()
    lifecycle.run(lifecycle.Assignment(whole.number, CONFIG, 0), context, OptunaReporter(whole))
    assert study.trials[whole.number].user_attrs["val_history"] == pytest.approx(history, abs=1e-3)


def test_a_trial_that_ends_on_its_own_leaves_no_checkpoint(small_mnist, tmp_path: Path) -> None:
    folder = tmp_path / lifecycle.PROGRESS / "0"
    kept_while_training: list[int] = []

    def on_epoch(number: int, done: int, total: int, val_accuracy: float) -> None:
        state = checkpoint.load(folder)
        kept_while_training.append(state.rounds_done if state is not None else 0)

    study = optuna.create_study(direction="maximize")
    context = lifecycle.Context(small_mnist, study="ended", study_dir=tmp_path, keep=0, on_epoch=on_epoch)
    trial = study.ask()
    outcome = lifecycle.run(lifecycle.Assignment(trial.number, {**CONFIG, "epochs": 4}, 0), context,
                            OptunaReporter(trial))
    assert outcome.state == "complete" and outcome.progress is None
    assert kept_while_training == [0, 1, 2, 3]  # kept as each round began, from the second on
    assert not folder.exists()


def search(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "search", "run", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV)


def trials(name: str, location: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(location)).get_trials(deepcopy=False)


def wait_for(condition, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def kept_at_least(folder: Path, rounds: int) -> checkpoint.State | None:
    state = checkpoint.load(folder)
    return state if state is not None and state.rounds_done >= rounds else None


def test_a_worker_killed_mid_trial_has_its_retry_continue_from_the_epoch_it_reached(write_space,
                                                                                     tmp_path: Path) -> None:
    space = write_space(SPACE, "killed.py")
    results = tmp_path / "results"
    process = search(str(space), "--results", str(results), *RUN)
    location = str(results / "killed" / "journal.log")
    folder = results / "killed" / lifecycle.PROGRESS / "0"
    wait_for(lambda: kept_at_least(folder, 2))
    victim = next(t for t in trials("killed", location) if t.number == 0)
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    reached = checkpoint.load(folder)  # the worker is dead: what it kept stays as it is
    assert reached is not None
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "exited with signal SIGKILL" in output and f"30 epochs (resumed after {reached.rounds_done})" in output

    done = {t.number: t for t in trials("killed", location)}
    assert record.lost_with_worker(done[0]) and not counts_toward_budget(done[0])
    retry = done[1]
    assert retry.user_attrs["retry_of"] == 0 and retry.params == done[0].params
    assert retry.user_attrs["resumed_at"] == reached.rounds_done
    history = retry.user_attrs["val_history"]
    assert len(history) == 30 and history[:reached.rounds_done] == reached.val_history
    assert [retry.intermediate_values[step] for step in range(reached.rounds_done)] == reached.val_history
    assert sorted(retry.intermediate_values) == list(range(30))
    assert sum(counts_toward_budget(t) for t in done.values()) == 1 and len(done) == 2  # budget exact
    assert not list((results / "killed" / lifecycle.PROGRESS).iterdir())


def test_ctrl_c_then_the_same_command_continues_the_interrupted_trial(write_space, tmp_path: Path) -> None:
    space = write_space(SPACE, "stopped.py")
    results = tmp_path / "results"
    argv = [str(space), "--results", str(results), *RUN]
    process = search(*argv)
    location = str(results / "stopped" / "journal.log")
    folder = results / "stopped" / lifecycle.PROGRESS / "0"
    wait_for(lambda: kept_at_least(folder, 2))
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    stopped = {t.number: t for t in trials("stopped", location)}
    reached = stopped[0].user_attrs["epochs"]
    assert stopped[0].user_attrs["interrupted"] and 2 <= reached < 30
    assert checkpoint.load(folder).rounds_done == reached  # kept as the epoch it was stopped in began
    assert stopped[1].state.name == "WAITING" and stopped[1].user_attrs["retry_of"] == 0

    again = search(*argv)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    done = {t.number: t for t in trials("stopped", location)}
    assert len(done) == 2 and sum(counts_toward_budget(t) for t in done.values()) == 1
    retry = done[1]
    assert retry.state.name == "COMPLETE" and retry.user_attrs["resumed_at"] == reached
    history = retry.user_attrs["val_history"]
    assert len(history) == 30 and history[:reached] == stopped[0].user_attrs["val_history"]
    assert not list((results / "stopped" / lifecycle.PROGRESS).iterdir())
