"""The trial record: what a stored trial reads back as, and what counts toward the budget."""

from __future__ import annotations

import math
import re
from pathlib import Path

import optuna
import pytest
from helpers import ROOT
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.study import record
from search.study.record import Attr
from search.study.storage import open_storage

pytestmark = pytest.mark.fast  # starts no TensorFlow, no worker, no server


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    """A real study in a journal file, as `run` stores one."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / "journal.log")),
                               direction="maximize")


def add(study: optuna.Study, state: TrialState, value: float | None = None, **attrs: object) -> optuna.trial.FrozenTrial:
    study.add_trial(create_trial(state=state, value=value, params={"lr": 0.1},
                                 distributions={"lr": FloatDistribution(0.01, 1.0)},
                                 user_attrs={str(k): v for k, v in attrs.items()}))
    return study.get_trials(deepcopy=False)[-1]


def test_a_trial_written_through_the_record_reads_back_whole(study: optuna.Study) -> None:
    def objective(trial: optuna.Trial) -> float:
        record.write(trial, {**record.machine(3, "oneDNN", "bfloat16"), Attr.CONFIG: {"model": "mlp"}, Attr.SEED: 7})
        record.write(trial, record.outcome([0.5, 0.9, 0.8], 1.234, n_params=100, best_epoch=2, test_accuracy=0.88))
        return 0.9

    study.optimize(objective, n_trials=1)
    trial = study.get_trials()[0]
    row = record.read(trial)
    assert (row.state, row.val_accuracy, row.test_accuracy, row.n_params, row.epochs) == ("complete", 0.9, 0.88, 100, 3)
    assert (row.train_seconds, row.seed, row.config, row.baseline, row.reason) == (1.23, 7, {"model": "mlp"}, "", "")
    assert row.val_history == [0.5, 0.9, 0.8] and row.counted
    assert trial.user_attrs["worker"] == 3 and trial.user_attrs["precision"] == "bfloat16"
    assert "interrupted" not in trial.user_attrs and "reason" not in trial.user_attrs  # absent, not None


def test_states_and_what_counts_toward_the_budget(study: optuna.Study) -> None:
    complete = add(study, TrialState.COMPLETE, 0.9, test_accuracy=0.8, baseline="S3")
    pruned = add(study, TrialState.PRUNED, None, val_history=[0.5, float("nan"), 0.7], reason="pruned after epoch 3")
    failed = add(study, TrialState.FAIL, None, reason="loss became NaN at epoch 1")
    lost = add(study, TrialState.FAIL)  # failed from outside: its worker died, it could record no reason
    interrupted = add(study, TrialState.FAIL, None, interrupted=True, reason="interrupted")
    surplus = add(study, TrialState.FAIL, None, surplus=True, reason="not run")
    study.enqueue_trial({})
    waiting = study.get_trials(deepcopy=False)[-1]

    states = [record.read(t).state for t in (complete, pruned, failed, lost, interrupted, surplus, waiting)]
    assert states == ["complete", "pruned", "fail", "lost", "interrupted", "fail", "waiting"]
    assert [record.counts_toward_budget(t) for t in (complete, pruned, failed, lost, interrupted, surplus)] == [
        True, True, True, False, False, False]
    assert record.will_count(waiting) and not record.will_count(complete)
    trials = study.get_trials(deepcopy=False)
    assert record.counted(trials) == 3 and record.places_taken(trials) == 4
    assert record.read(pruned).val_accuracy == 0.7  # the best finite epoch
    assert math.isnan(record.read(failed).val_accuracy) and math.isnan(record.read(pruned).test_accuracy)
    assert record.read(lost).reason == record.LOST_REASON
    assert record.read(complete).baseline == "S3"


def test_reason_of_an_exception_is_one_line_of_at_most_300_characters() -> None:
    assert record.reason_of(ValueError("first line\nsecond")) == "ValueError: first line"
    assert record.reason_of(MemoryError()) == "MemoryError"
    assert len(record.reason_of(RuntimeError("x" * 1000))) == 300


def test_no_stored_name_is_spelt_outside_the_record() -> None:
    # A trial or study attribute is read or written by its Attr/StudyAttr name, never a bare string.
    stored = re.compile(r"""(user_attrs(\.get)?[\[(]|set_user_attr\()\s*["']""")
    package = ROOT / "search"
    offenders = [f"{path.name}:{number}" for path in sorted(package.rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if stored.search(line)]
    assert offenders == []


def test_a_model_is_chosen_by_validation_then_fewer_parameters_then_the_earlier_trial() -> None:
    def row(number: int, val: float, test: float, params: int, state: str = "complete", **extra: object) -> record.Record:
        return record.Record(number, state, val, test, params, 3, 1.0, "", {}, 0, "", **extra)  # type: ignore[arg-type]

    rows = [row(0, 0.98, 0.99, 500), row(1, 0.99, 0.97, 900), row(2, 0.99, 0.98, 100), row(3, 0.99, 0.96, 100),
            row(4, 0.995, 0.90, 10, state="pruned"), row(5, 0.999, 0.99, 10, confirm_of=1)]
    assert [r.number for r in sorted(rows[:4], key=record.by_validation)] == [2, 3, 1, 0]
    chosen = record.selected(rows)  # pruned and confirm trainings are not candidates; test accuracy never decides
    assert chosen is not None and chosen.number == 2
    assert record.selected([]) is None
    assert record.validation_order(float("nan"), None, 7) > record.validation_order(0.1, 10**9, 0)
