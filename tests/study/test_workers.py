"""Several workers on one study, on a real PostgreSQL and on the local journal file, with faults:
a global trial budget, SIGKILL mid-trial, Ctrl-C, a database restart, a per-trial time limit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from helpers import expected_kernels
from optuna.storages import BaseStorage

from search.cli import main
from search.errors import EXIT_FAILED
from search.study import record
from search.study.record import counts_toward_budget
from search.study.storage import open_storage
from search.training.runtime import cores

SPACE = """
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(16, 64, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
}
BASELINES = {"tiny": {"model": "mlp", "layers": [{"units": 16}], "learning_rate": 3e-3}}
"""
QUICK = ["--train-size", "1000", "--seed", "0"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

pytestmark = pytest.mark.slow


def trials(name: str, location: str | BaseStorage) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, from a location, or from a storage already open (quicker to poll)."""
    opened = open_storage(location) if isinstance(location, str) else location
    try:
        return optuna.load_study(study_name=name, storage=opened).get_trials(deepcopy=False)
    except KeyError:  # not created yet by the process under test
        return []


def search(*argv: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """`search` in a child process; `sigint_ignored` starts it the way `nohup search ... &` does."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen([sys.executable, "-m", "search", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, preexec_fn=ignore)


def wait_for(condition, timeout: float = 180.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_three_workers_run_exactly_the_budget_on_postgresql(postgres, write_space, tmp_path: Path, capsys) -> None:
    space = write_space(SPACE, "budget.py")
    results = tmp_path / "results"
    code = main(["run", str(space), "--trials", "12", "--workers", "3", "--epochs", "1", "--storage", postgres.url,
                 "--results", str(results), *QUICK])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    done = trials("budget", postgres.url)
    assert sum(counts_toward_budget(t) for t in done) == 12
    assert [t.user_attrs.get("baseline") for t in done if counts_toward_budget(t)].count("tiny") == 1
    assert not [t for t in done if t.state.name in ("RUNNING", "WAITING")]
    assert len({t.user_attrs["pid"] for t in done if counts_toward_budget(t)}) >= 2  # the work was shared
    # Three workers share the cores, each on cores // 3 threads (at least one): oneDNN on one thread.
    assert {t.user_attrs["cpu_kernels"] for t in done if counts_toward_budget(t)} == {expected_kernels({"mlp"}, max(1, cores() // 3))}
    assert len({(t.user_attrs["seed"]) for t in done if counts_toward_budget(t)}) == 12
    # The password in the storage URL is nowhere: not on screen, not in any file written.
    assert "s3cret" not in out and "***" in out
    for path in results.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".csv", ".py", ".log"):
            assert "s3cret" not in path.read_text(errors="ignore"), path


def test_worker_killed_mid_trial_is_retried_and_the_study_completes(postgres, write_space, tmp_path: Path) -> None:
    space = write_space(SPACE, "killed.py")
    process = search("run", str(space), "--trials", "6", "--workers", "2", "--epochs", "12", "--storage",
                     postgres.url, "--results", str(tmp_path / "results"), "--pruner", "none", *QUICK)
    watched = open_storage(postgres.url)  # one connection for the polling, so each look is quick

    def running_worker_trial():
        running = [t for t in trials("killed", watched)
                   if t.state.name == "RUNNING" and "config" in t.user_attrs and t.user_attrs["pid"] != process.pid]
        return running[0] if running else None

    victim = wait_for(running_worker_trial)
    pid = victim.user_attrs["pid"]
    os.kill(pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert f"worker {victim.user_attrs['worker']} exited with signal SIGKILL" in output
    done = trials("killed", postgres.url)
    assert not [t for t in done if t.state.name == "RUNNING"]
    assert sum(counts_toward_budget(t) for t in done) == 6
    # The trial the worker was in when it died: the one seen running, unless that one finished in
    # the moment between the look and the kill, and the worker had begun its next.
    lost = [t for t in done if t.user_attrs.get("pid") == pid and record.lost_with_worker(t)]
    assert len(lost) == 1 and not counts_toward_budget(lost[0]), [(t.number, t.state.name) for t in done]
    retry = next(t for t in done if t.user_attrs.get("retry_of") == lost[0].number)
    assert retry.params == lost[0].params and counts_toward_budget(retry)


@pytest.mark.parametrize("nohup", [False, True], ids=["ctrl-c", "sigterm-under-nohup"])
def test_ctrl_c_stops_all_workers_and_the_study_resumes(nohup: bool, write_space, tmp_path: Path) -> None:
    # Under nohup the workers inherit SIGINT ignored: they must still stop when the parent is told
    # to, each marking its own trial interrupted, rather than run on until the parent kills them
    # after 60 s. (No recycling: a worker that ignored the request would otherwise leave after its
    # 25 trials.)
    space = write_space(SPACE, "stopped.py")
    results = tmp_path / "results"
    process = search("run", str(space), "--trials", "400", "--workers", "2", "--epochs", "3", "--results",
                     str(results), "--recycle-after", "1000", *QUICK, sigint_ignored=nohup)
    location = str(results / "stopped" / "journal.log")
    wait_for(lambda: Path(location).exists() and sum(counts_toward_budget(t) for t in trials("stopped", location)) >= 2)
    process.send_signal(signal.SIGTERM if nohup else signal.SIGINT)
    sent = time.monotonic()
    output, _ = process.communicate(timeout=120)
    assert time.monotonic() - sent < 45, "the workers ran on until the parent killed them"
    assert process.returncode == 130, output
    assert "run the same command to resume" in output
    done = trials("stopped", location)
    assert not [t for t in done if t.state.name == "RUNNING"]
    kept = sum(counts_toward_budget(t) for t in done)
    assert kept >= 2 and (results / "stopped" / "leaderboard.csv").exists()
    assert main(["run", str(space), "--trials", str(kept + 2), "--workers", "2", "--epochs", "1",
                 "--results", str(results), *QUICK]) == 0
    assert sum(counts_toward_budget(t) for t in trials("stopped", location)) == kept + 2


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 1.0])
def test_ctrl_c_to_the_process_group_at_any_moment_of_a_trial_is_exit_130_with_every_started_trial_interrupted(
        delay: float, write_space, tmp_path: Path) -> None:
    # As a terminal sends it: SIGINT to the driver and its workers at once, `delay` seconds after a new
    # trial appears in the study (so inside Optuna's ask and tell, the set-up, the first epoch, ...).
    space = write_space(SPACE, "moment.py")
    results = tmp_path / "results"
    process = subprocess.Popen([sys.executable, "-m", "search", "run", str(space), "--trials", "400", "--workers",
                                "2", "--epochs", "2", "--results", str(results), "--recycle-after", "1000", *QUICK],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                               start_new_session=True)
    location = str(results / "moment" / "journal.log")
    wait_for(lambda: Path(location).exists() and sum(counts_toward_budget(t) for t in trials("moment", location)) >= 1)
    before = len(trials("moment", location))
    wait_for(lambda: len(trials("moment", location)) > before, every=0.01)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    done = trials("moment", location)
    assert not [t.number for t in done if t.state.name == "RUNNING"], output
    # A trial either ran to its own end (one whose last compiled call was under way finishes: that work is
    # kept) or was stopped and recorded interrupted; none is left running or lost with its worker.
    unfinished = [t for t in done if t.state.name != "WAITING" and not record.ended_on_its_own(t)]
    assert all(t.user_attrs.get("interrupted") for t in unfinished), [
        (t.number, t.state.name, t.user_attrs.get("reason")) for t in unfinished]


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for a parent to reap it does not)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_killing_the_driver_stops_its_workers_and_the_study_resumes(write_space, tmp_path: Path) -> None:
    # SIGKILL gives the driver no chance to stop anything: its workers must notice on their own.
    space = write_space(SPACE, "killed.py")
    results = tmp_path / "results"
    argv = ["run", str(space), "--trials", "400", "--workers", "2", "--epochs", "20", "--results", str(results),
            *QUICK]
    driver = search(*argv)
    location = str(results / "killed" / "journal.log")
    running = wait_for(lambda: Path(location).exists() and len(pids := {
        t.user_attrs["pid"] for t in trials("killed", location) if t.state.name == "RUNNING" and "pid" in t.user_attrs
    }) == 2 and pids)
    driver.kill()
    driver.wait()
    wait_for(lambda: not any(alive(pid) for pid in running), timeout=10)
    done = trials("killed", location)
    assert not [t for t in done if t.state.name == "RUNNING"]
    assert {t.user_attrs["pid"] for t in done if t.user_attrs.get("interrupted")} == running
    kept = sum(counts_toward_budget(t) for t in done)
    assert kept < 400  # they did not run the budget out
    assert main(["run", str(space), "--trials", str(kept + 2), "--workers", "2", "--epochs", "1",
                 "--results", str(results), *QUICK]) == 0
    assert sum(counts_toward_budget(t) for t in trials("killed", location)) == kept + 2


def test_database_restart_mid_search_loses_no_finished_trial(postgres, write_space, tmp_path: Path) -> None:
    space = write_space(SPACE, "restart.py")
    process = search("run", str(space), "--trials", "5", "--epochs", "3", "--storage", postgres.url,
                     "--results", str(tmp_path / "results"), "--pruner", "none", *QUICK)
    before = wait_for(lambda: [t.number for t in trials("restart", postgres.url) if counts_toward_budget(t)])
    postgres.restart()
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    done = trials("restart", postgres.url)
    assert sum(counts_toward_budget(t) for t in done) == 5
    assert set(before) <= {t.number for t in done if counts_toward_budget(t)}
    assert not [t for t in done if t.state.name == "RUNNING"]


def test_worker_command_joins_a_stored_study_and_finishes_its_budget(postgres, write_space, tmp_path: Path) -> None:
    space = write_space(SPACE, "joined.py")
    results = tmp_path / "results"
    # `run` stops starting trials after its --timeout (here: after its first trial, however fast the
    # machine); a worker started elsewhere finishes the job from the settings stored on the study
    # (space, data, epochs, budget).
    assert main(["run", str(space), "--trials", "4", "--timeout", "0.01", "--epochs", "1", "--storage", postgres.url,
                 "--results", str(results), *QUICK]) == 0
    first = sum(counts_toward_budget(t) for t in trials("joined", postgres.url))
    assert first < 4
    remote = tmp_path / "elsewhere"
    assert main(["worker", "--study", "joined", "--storage", postgres.url, "--results", str(remote)]) == 0
    done = trials("joined", postgres.url)
    assert sum(counts_toward_budget(t) for t in done) == 4
    assert (remote / "joined" / "space.py").read_text() == space.read_text()
    assert Counter(t.user_attrs["config"]["epochs"] for t in done if counts_toward_budget(t)) == Counter({1: 4})
    # The password in the URL is stored nowhere in the database either (the worker brought its own URL).
    assert "s3cret" not in database_text(postgres.url)


def database_text(url: str) -> str:
    """Every row of every table of the database, as text: what pg_dump would show."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    tables = sqlalchemy.MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        text = "\n".join(str(row) for table in tables.sorted_tables for row in connection.execute(table.select()))
    engine.dispose()
    return text


def test_trial_timeout_fails_long_trials_with_the_reason(write_space, tmp_path: Path) -> None:
    space = write_space('SPACE = {"model": "mlp", "layers": [{"units": 512}, {"units": 512}], "batch_size": 32}\n',
                        "slow.py")
    results = tmp_path / "results"
    code = main(["run", str(space), "--trials", "2", "--epochs", "50", "--trial-timeout", "1", "--train-size",
                 "5000", "--workers", "1", "--results", str(results)])
    assert code == EXIT_FAILED  # a run that trained nothing says so
    done = trials("slow", str(results / "slow" / "journal.log"))
    assert [t.state.name for t in done] == ["FAIL", "FAIL"]
    assert all(t.user_attrs["reason"] == "exceeded --trial-timeout of 1 s" for t in done)
    assert all(t.user_attrs["train_seconds"] < 10 for t in done)


def _sleep(ready, ignore_sigterm: bool) -> None:
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(120)


@pytest.mark.fast
@pytest.mark.parametrize(("ignore_sigterm", "ended_by"), [(False, signal.SIGTERM), (True, signal.SIGKILL)])
def test_stopping_workers_asks_with_sigterm_then_kills_after_the_grace(ignore_sigterm: bool, ended_by) -> None:
    from search.study.workers import stop_processes

    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(target=_sleep, args=(ready, ignore_sigterm))
    process.start()
    assert ready.wait(60)
    stop_processes([process], grace=1.0)
    assert process.exitcode == -ended_by


def test_eight_workers_share_one_postgresql_study_and_count_exactly_160(postgres, write_space, tmp_path: Path) -> None:
    # The scale test, as Optuna runs its own against a database: many processes on one study, each trial a
    # real (short) training; the budget is exact, nothing is left running, every trial is accounted for.
    space = write_space(SPACE, "scale.py")
    process = search("run", str(space), "--trials", "160", "--workers", "8", "--epochs", "1", "--train-size", "300",
                     "--seed", "0", "--storage", postgres.url, "--results", str(tmp_path / "results"))
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-3000:]
    done = trials("scale", postgres.url)
    assert sum(counts_toward_budget(t) for t in done) == 160
    assert not [t for t in done if t.state.name in ("RUNNING", "WAITING")]
    assert not [t for t in done if record.lost_with_worker(t)]
    assert len({t.user_attrs["pid"] for t in done if counts_toward_budget(t)}) >= 8  # every worker took part
    assert sorted(t.number for t in done) == list(range(len(done)))
