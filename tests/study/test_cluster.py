"""`run --ray`: a search's workers as actors on a real multi-node Ray cluster (`ray.cluster_utils.Cluster`,
as Ray tests itself), with a real PostgreSQL study: the budget, a node lost mid-search, Ctrl-C, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_checkpoints import RUN, kept_at_least
from test_checkpoints import SPACE as WIDE
from test_workers import ENV, QUICK, SPACE, alive, search, trials, wait_for

from search.cli import main
from search.study import lifecycle, record
from search.study.record import Attr, counts_toward_budget
from search.study.storage import open_storage
from search.training import checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    """Two Ray nodes of one CPU each, on loopback; the search joins it by address."""
    from ray.cluster_utils import Cluster

    started = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    started.add_node(num_cpus=1)
    started.wait_for_nodes()
    yield started
    started.shutdown()


def ray_search(cluster, space: Path, results: Path, storage: str, *argv: str) -> subprocess.Popen[str]:
    return search("run", str(space), "--ray", cluster.address, "--storage", storage, "--results", str(results),
                  *QUICK, *argv)


def nodes(cluster) -> set[str]:
    return {node.node_id for node in cluster.list_all_nodes()}


def test_a_search_on_two_nodes_counts_exactly_its_budget_and_runs_on_both(cluster, postgres, write_space,
                                                                           tmp_path: Path) -> None:
    space = write_space(SPACE, "spread.py")
    shared = tmp_path / "shared"  # the artifact store every node writes its kept trials to
    process = ray_search(cluster, space, tmp_path / "results", postgres.url, "--trials", "8", "--epochs", "1",
                         "--artifacts", str(shared))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "2 workers on the Ray cluster" in output
    done = trials("spread", postgres.url)
    assert sum(counts_toward_budget(t) for t in done) == 8
    assert not [t for t in done if t.state.name in ("RUNNING", "WAITING")]
    assert {t.user_attrs[Attr.NODE] for t in done if counts_toward_budget(t)} == nodes(cluster)
    # Each worker trained on the one CPU it asked the cluster for.
    assert {t.user_attrs[Attr.THREADS] for t in done if counts_toward_budget(t)} == {1}
    # A trial kept on the other node exports on a machine that ran none of them, from the artifact store.
    other = next(node.node_id for node in cluster.list_all_nodes() if node.node_id != cluster.head_node.node_id)
    there = next(t for t in done if t.user_attrs.get(Attr.NODE) == other and t.state.name == "COMPLETE")
    elsewhere = tmp_path / "elsewhere"
    assert main(["export", "spread", "--trial", str(there.number), "--results", str(elsewhere), "--storage",
                 postgres.url, "--out", str(tmp_path / "export")]) == 0
    assert (elsewhere / "spread" / "trials" / f"{there.number:05d}" / "model.weights.h5").is_file()


def test_a_node_lost_mid_search_loses_no_finished_trial_and_the_budget_stays_exact(cluster, postgres, write_space,
                                                                                    tmp_path: Path) -> None:
    space = write_space(SPACE, "lost.py")
    process = ray_search(cluster, space, tmp_path / "results", postgres.url, "--trials", "6", "--epochs", "12",
                         "--pruner", "none")
    head = cluster.head_node.node_id
    other = next(node for node in cluster.list_all_nodes() if node.node_id != head)
    watched = open_storage(postgres.url)

    def running_on_the_other_node():
        return [t for t in trials("lost", watched) if t.state.name == "RUNNING" and "config" in t.user_attrs
                and t.user_attrs.get(Attr.NODE) == other.node_id]

    victim = wait_for(running_on_the_other_node)[0]
    finished_before = {t.number for t in trials("lost", watched) if record.ended_on_its_own(t)}
    cluster.remove_node(other)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "its Ray node or process lost" in output and "failed and queued again" in output
    done = trials("lost", postgres.url)
    assert finished_before <= {t.number for t in done if record.ended_on_its_own(t)}
    assert sum(counts_toward_budget(t) for t in done) == 6
    assert not [t for t in done if t.state.name in ("RUNNING", "WAITING")]
    lost = next(t for t in done if t.number == victim.number)
    assert record.lost_with_worker(lost) and not counts_toward_budget(lost)
    retry = next(t for t in done if t.user_attrs.get(Attr.RETRY_OF) == victim.number)
    assert retry.params == lost.params and counts_toward_budget(retry)
    assert retry.user_attrs[Attr.NODE] == head


def test_ctrl_c_stops_every_ray_worker_and_marks_their_trials_interrupted(cluster, postgres, write_space,
                                                                         tmp_path: Path) -> None:
    space = write_space(SPACE, "halted.py")
    process = ray_search(cluster, space, tmp_path / "results", postgres.url, "--trials", "400", "--epochs", "3",
                         "--study", "halted")
    watched = open_storage(postgres.url)
    wait_for(lambda: sum(counts_toward_budget(t) for t in trials("halted", watched)) >= 2
             and len({t.user_attrs.get(Attr.NODE) for t in trials("halted", watched)} - {None}) == 2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output, output
    done = trials("halted", postgres.url)
    assert not [t.number for t in done if t.state.name == "RUNNING"], output
    unfinished = [t for t in done if t.state.name != "WAITING" and not record.ended_on_its_own(t)]
    assert all(t.user_attrs.get(Attr.INTERRUPTED) for t in unfinished)
    # The cluster outlives the driver and ends a removed actor's process on its own time: on a busy
    # machine that has taken a few seconds. Every worker's process must be gone within 30 s.
    pids = {t.user_attrs[Attr.PID] for t in done if Attr.PID in t.user_attrs}
    wait_for(lambda: not [pid for pid in pids if alive(pid)], timeout=30)


def test_a_ray_workers_trial_continues_from_its_checkpoint_after_the_worker_is_killed_and_after_ctrl_c(
        cluster, postgres, write_space, tmp_path: Path) -> None:
    # The two nodes share this machine's disk, as nodes that mount one results folder do: a retry finds
    # the checkpoint on whichever node it runs.
    space = write_space(WIDE, "continued.py")
    results = tmp_path / "results"
    argv = ["run", str(space), "--ray", cluster.address, "--storage", postgres.url, "--results", str(results), *RUN]
    progress = results / "continued" / lifecycle.PROGRESS
    watched = open_storage(postgres.url)
    process = search(*argv)
    wait_for(lambda: kept_at_least(progress / "0", 2), every=0.05)
    first = next(t for t in trials("continued", watched) if t.number == 0)
    os.kill(first.user_attrs[Attr.PID], signal.SIGKILL)  # the Ray worker's process, mid-trial
    killed = checkpoint.load(progress / "0")  # the worker is dead: what it kept stays as it is
    assert killed is not None
    killed_at = killed.rounds_done
    wait_for(lambda: kept_at_least(progress / "1", killed_at + 2), every=0.05)  # its retry goes on, then Ctrl-C
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    stopped = {t.number: t for t in trials("continued", postgres.url)}
    assert record.lost_with_worker(stopped[0]) and stopped[1].user_attrs[Attr.RETRY_OF] == 0
    assert stopped[1].user_attrs[Attr.RESUMED_AT] == killed_at and stopped[1].user_attrs[Attr.INTERRUPTED]
    interrupted_at = stopped[1].user_attrs[Attr.EPOCHS]
    assert killed_at + 2 <= interrupted_at < 30
    assert stopped[1].user_attrs[Attr.VAL_HISTORY][:killed_at] == killed.val_history  # carried, not trained again

    again = search(*argv)  # the same command continues the interrupted retry, on either node
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    done = {t.number: t for t in trials("continued", postgres.url)}
    assert len(done) == 3 and sum(counts_toward_budget(t) for t in done.values()) == 1  # budget exact
    last = done[2]
    assert last.state.name == "COMPLETE" and last.user_attrs[Attr.RETRY_OF] == 1
    assert last.user_attrs[Attr.RESUMED_AT] == interrupted_at
    history = last.user_attrs[Attr.VAL_HISTORY]
    assert len(history) == 30 and history[:interrupted_at] == stopped[1].user_attrs[Attr.VAL_HISTORY]
    assert sorted(last.intermediate_values) == list(range(30))
    assert not list(progress.iterdir())


def refused(argv: list[str], results: Path, env: dict[str, str] | None = None) -> str:
    """Run `search` expecting bad input: exit 2, one line, no results folder."""
    done = subprocess.run([sys.executable, "-m", "search", *argv, "--results", str(results)], capture_output=True,
                          text=True, env=env or ENV, timeout=180)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in done.stderr, done.stderr
    assert not results.exists()
    return lines[0]


def test_bad_ray_input_is_one_line_exit_2_with_nothing_written(cluster, write_space, tmp_path: Path) -> None:
    space = str(write_space(SPACE, "bad.py"))
    results = tmp_path / "results"
    with __import__("socket").socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert "no Ray head answers" in refused(["run", space, "--ray", f"127.0.0.1:{closed}"], results)
    assert "HOST:PORT" in refused(["run", space, "--ray", "nowhere"], results)
    line = refused(["run", space, "--ray", cluster.address, "--storage",
                    f"postgresql://search:s3cret@127.0.0.1:{closed}/postgres"], results)
    assert line.startswith("error: Ray node ") and "cannot reach it" in line and "s3cret" not in line
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    line = refused(["run", space, "--ray", cluster.address, "--artifacts", str(a_file / "store")], results)
    assert "--artifacts" in line and "not a folder" in line
    assert "needs --ray" in refused(["run", space, "--cpus-per-worker", "2"], results)
    # Ray not installed: a package that fails to import, first on the path, stands for its absence.
    blocker = tmp_path / "no-ray"
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(blocker), *filter(None, [ENV.get("PYTHONPATH")])])}
    assert "Ray is not installed" in refused(["run", space, "--ray"], results, env)
