"""The tutorials trained as written (study/references.py): `search baselines`, on a real MNIST slice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import recorded

from search.cli import main
from search.errors import InputError
from search.results import confirm
from search.space.tutorials import TUTORIALS
from search.study import record, references
from search.study.record import Attr, StudyAttr
from search.study.studies import load_study


@pytest.mark.fast
def test_scaled_multiplies_epochs_or_steps() -> None:
    assert references.scaled(TUTORIALS["S3"].config, 0.1)["steps"] == 3000
    assert references.scaled(TUTORIALS["S5"].config, 0.1)["epochs"] == 1  # never below one
    assert references.scaled(TUTORIALS["S4"].config, 2)["epochs"] == 38


def test_run_baselines_trains_and_tabulates(small_mnist) -> None:
    messages: list[str] = []
    frame = references.run_tutorials(small_mnist, ["S1", "S5"], scale=0.2, progress=messages.append)
    assert list(frame.name) == ["S1", "S5"]
    assert list(frame.columns) == ["name", "config", "tutorial", "published", "ours", "delta", "val_accuracy", "epochs",
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


def test_baselines_command_prints_the_table_and_leaves_the_store_alone_when_shortened(tmp_path: Path,
                                                                                    capsys) -> None:
    assert main(["baselines", "--only", "S1", "--scale", "0.2", "--train-size", "2000", "--results",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| S1 " in out and "92.00%" in out  # our figure beside the published one
    assert "left as it was" in out and not (tmp_path / references.STORE).exists()
    assert main(["baselines", "--only", "S9"]) == 2


def test_baselines_as_written_fill_the_reference_store_and_the_report_reads_it(tmp_path: Path,
                                                                               write_space) -> None:
    # S1 as written (1,000 steps of a linear model on all 55,000 images) is the one tutorial quick enough here.
    # Each in a fresh process, as a user runs it: TensorFlow picks its kernels once per process, and they
    # are part of the kind of machine.
    out = ""
    for seed in (0, 1):
        done = subprocess.run([sys.executable, "-m", "search", "baselines", "--only", "S1", "--seed", str(seed),
                               "--results", str(tmp_path)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        out = done.stdout
    runs = references.stored(tmp_path)
    assert [(run["tutorial"], run["study"], run["trial"], run["seed"]) for run in runs] == [
        ("S1", "baselines", 0, 0), ("S1", "baselines", 1, 1)]
    assert runs[0]["machine"] == runs[1]["machine"] and runs[0]["machine"]["precision"] == "float32"
    assert all(0.85 < run["test"] < 0.95 for run in runs)
    tests = [run["test"] for run in runs]
    assert f"S1: {sum(tests) / 2:.2%} ± " in out.splitlines()[-1] and "2 trainings" in out.splitlines()[-1]
    assert references.summary(tmp_path, {**runs[0]["machine"], "cpu": "another"}) == []
    # A study on the same kind of machine (float32 as the tutorials were trained, and a softmax model, for
    # which TensorFlow takes the same kernels as for S1) reads them in its report.
    space = write_space('SPACE = {"model": "softmax", "optimizer": "sgd", "learning_rate": Float(0.1, 0.5)}',
                        "stored.py")
    assert main(["run", str(space), "--trials", "1", "--epochs", "1", "--train-size", "500", "--workers", "1",
                 "--precision", "float32", "--results", str(tmp_path)]) == 0
    assert main(["report", "stored", "--results", str(tmp_path)]) == 0
    page = (tmp_path / "stored" / "report.html").read_text()
    assert out.splitlines()[-1].strip() in page and "The tutorials as written on this kind of machine" in page


def _study(name: str, s3_tests: list[float], machine: str = "AMD EPYC (family 25, model 1)") -> Any:
    """An in-memory study as `run` leaves it: a searched trial (0), S3 as written (1), S3 shortened (2)
    and, for each further test accuracy, a confirm training of S3."""
    on = {Attr.CPU: machine, Attr.VERSIONS: {"tensorflow": "2.21.0"}, Attr.PRECISION: "float32",
          Attr.CPU_KERNELS: "oneDNN"}
    s3 = {**on, Attr.CONFIG: TUTORIALS["S3"].config}
    study = recorded([("complete", 0.99, 0.991, on),
                      ("complete", 0.986, s3_tests[0], {**s3, Attr.BASELINE: TUTORIALS["S3"].label}),
                      ("complete", 0.98, 0.98, {**on, Attr.CONFIG: {**TUTORIALS["S3"].config, "steps": 300},
                                                Attr.BASELINE: "S3 cut short"})]
                     + [("complete", 0.986, test, {**s3, Attr.CONFIRM_OF: 1, Attr.REPLICA: replica + 1})
                        for replica, test in enumerate(s3_tests[1:])], name=name)
    for key, value in ((StudyAttr.DATASET, "mnist"), (StudyAttr.DATA_CHECKSUM, "c0ffee"), (StudyAttr.SEED, 0)):
        study.set_user_attr(key, value)
    return study


@pytest.mark.fast
def test_the_store_keeps_tutorials_as_written_and_lends_them_to_confirm_on_the_same_machine(tmp_path: Path) -> None:
    first = _study("first", [0.984, 0.985, 0.983])
    assert references.collect(first, tmp_path) == 3  # S3's own run and its two confirm trainings; not the cut one
    assert references.collect(first, tmp_path) == 0  # each once
    stored = references.stored(tmp_path)
    assert [(run["tutorial"], run["trial"], run["test"]) for run in stored] == [("S3", 1, 0.984), ("S3", 3, 0.985),
                                                                               ("S3", 4, 0.983)]

    second = _study("second", [0.982])
    _, total = confirm.queue(second, 2, 3, tmp_path)
    assert total == 3  # the searched trial 3 times; S3: its own run and all 3 stored, nothing trained
    assert "1 baseline's own run in the search and 3 borrowed from the reference store" == confirm.reused(second)
    waiting = [t.user_attrs[Attr.CONFIRM_OF] for t in second.get_trials(deepcopy=False) if t.state.name == "WAITING"]
    assert waiting == [0, 0, 0]
    found = confirm.summary(second)
    assert found is not None and found.baseline is not None
    assert sorted(found.baseline.test) == [0.982, 0.983, 0.984, 0.985]  # its own, and every stored one: 4 of 3
    assert confirm.standing(_study("third", [0.982]), workers=2, results=tmp_path) is not None
    assert "the baseline 0 (" in str(confirm.standing(_study("fourth", [0.98]), 2, tmp_path))

    elsewhere = _study("elsewhere", [0.982], machine="Intel Xeon (family 6, model 143)")
    _, total = confirm.queue(elsewhere, 2, 3, tmp_path)
    assert total == 5  # another kind of machine borrows nothing: S3 trains twice more


@pytest.mark.fast
@pytest.mark.parametrize("text", ["[1, 2]", "{", '{"runs": 3}', '{"runs": [{"study": "a"}]}', '{"runs": [7]}'])
def test_a_store_that_is_not_one_stops_run_in_one_line_before_anything_is_written(write_space, tmp_path: Path,
                                                                                  capsys, text: str) -> None:
    (tmp_path / references.STORE).write_text(text)
    with pytest.raises(InputError, match=r"references.json: not a reference store \(\w+Error\)"):
        references.stored(tmp_path)
    space = write_space("SPACE = {'model': 'mlp', 'learning_rate': Float(1e-3, 1e-2)}\n")
    assert main(["run", str(space), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a reference store" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [references.STORE, "space.py"]


def test_a_second_study_borrows_the_tutorial_and_trains_only_its_pick(write_space, tmp_path: Path, capsys) -> None:
    # S1 as written (1,000 SGD steps, a few seconds) on the full training set: a reference.
    space = write_space("""
        from search.space import baselines
        SPACE = {"model": "mlp", "layers": [{"units": Int(16, 32)}], "learning_rate": 3e-3, "batch_size": 256,
                 "epochs": 1}
        BASELINES = baselines("S1")
    """, "ref.py")
    results = tmp_path / "results"
    common = ["--trials", "2", "--workers", "1", "--precision", "bfloat16", "--results", str(results)]
    assert main(["run", str(space), "--study", "one", "--seed", "1", "--confirm", *common]) == 0
    assert [run["tutorial"] for run in references.stored(results)] == ["S1"] * 3  # its own run and 2 confirm trainings
    # The tutorial and its confirm trainings in float32, as written; the searched trials as asked.
    precisions = {(bool(t.user_attrs.get(Attr.BASELINE)) or t.user_attrs.get(Attr.CONFIRM_OF) == 0,
                   t.user_attrs[Attr.PRECISION]) for t in load_study("one", results).get_trials(deepcopy=False)}
    assert precisions == {(True, "float32"), (False, "bfloat16")}
    stored = references.stored(results)
    capsys.readouterr()
    assert main(["run", str(space), "--study", "two", "--seed", "2", *common]) == 0
    assert "trains it 3 more times and the baseline 0 (" in " ".join(capsys.readouterr().out.split())
    # Its S1 was not trained: the trial records the store's first training of S1, and where it came from.
    s1 = next(t for t in load_study("two", results).get_trials(deepcopy=False) if t.user_attrs.get(Attr.BASELINE))
    source = stored[0]
    assert s1.user_attrs[Attr.REFERENCE] == f"one#{source['trial']}" and Attr.VAL_HISTORY not in s1.user_attrs
    assert (s1.value, s1.user_attrs[Attr.TEST_ACCURACY], s1.user_attrs[Attr.SEED]) == (
        source["val"], source["test"], source["seed"])
    assert s1.user_attrs[Attr.PRECISION] == "float32" and s1.user_attrs[Attr.EPOCHS] == 2  # 1,000 steps of 430
    assert main(["confirm", "two", "--results", str(results), "--workers", "1"]) == 0
    assert "already run: 1 baseline's own run in the search and 2 borrowed from the reference store" in " ".join(
        capsys.readouterr().out.split())
    assert references.stored(results) == stored  # nothing trained, nothing stored twice
    trials = load_study("two", results).get_trials(deepcopy=False)
    trained = [t.user_attrs[Attr.CONFIRM_OF] for t in trials if record.is_confirmation(t)]
    pick = next(t.number for t in trials if not t.user_attrs.get(Attr.BASELINE) and not record.is_confirmation(t))
    assert trained == [pick] * 3  # no tutorial trained again
    found = confirm.summary(load_study("two", results))
    assert found is not None and found.baseline is not None and len(found.baseline.test) == 3
