"""The artifact store: kept trials reach every machine through `--artifacts`, and leave it with `--keep-top`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import optuna
import pytest

from search.cli import main
from search.study import artifacts

# Trial 0, the baseline, barely learns; trial 1 does: with --keep-top 1, trial 1 takes trial 0's place.
SPACE = """
SPACE = {"model": "mlp", "layers": [{"units": Int(32, 64)}], "learning_rate": 3e-3, "batch_size": 64}
BASELINES = {"weak": {"model": "softmax", "learning_rate": 1e-5, "batch_size": 256}}
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-trial search run by "machine A" (results folder A) into a journal and an artifact store that
    other machines reach too; returns the folder holding the journal, the store and A."""
    folder = tmp_path_factory.mktemp("machines")
    (folder / "db").mkdir()
    space = folder / "art.py"
    space.write_text("from search.space import Choice, Float, Int, Repeat\n" + SPACE)
    assert main(["run", str(space), "--trials", "2", "--epochs", "1", "--train-size", "2000", "--workers", "1",
                 "--seed", "0", "--keep-top", "1", "--results", str(folder / "A"), "--storage",
                 str(folder / "db" / "journal.log"), "--artifacts", str(folder / "store")]) == 0
    return folder


def trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    from search.study.studies import load_study

    return load_study("art", folder / "A", str(folder / "db" / "journal.log")).get_trials()


@pytest.mark.slow
def test_another_machine_exports_a_trial_from_the_store_without_retraining(shared: Path, capsys) -> None:
    done = trials(shared)
    assert done[1].user_attrs["test_accuracy"] > 0.5  # trial 1 learned (the baseline did not): it is the one kept
    weights = (shared / "A" / "art" / "trials" / "00001" / artifacts.WEIGHTS).read_bytes()
    out = shared / "exported"
    # Machine B: its own results folder, the same storage; the store is the one the search recorded.
    assert main(["export", "art", "--results", str(shared / "B"), "--storage", str(shared / "db" / "journal.log"),
                 "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["trial"] == 1 and card["test_accuracy"] == done[1].user_attrs["test_accuracy"]
    assert card["trained_on"].startswith("the trial's own training")
    fetched = shared / "B" / "art" / "trials" / "00001"
    assert (fetched / artifacts.WEIGHTS).read_bytes() == weights  # the very weights machine A kept
    assert json.loads((fetched / artifacts.STORED).read_text()) == done[1].user_attrs["artifact_ids"]
    assert (shared / "B" / "art" / "storage.txt").is_file()  # B's folder now holds this study's trial numbers


@pytest.mark.slow
def test_a_trial_keep_top_drops_leaves_the_store_too(shared: Path, capsys) -> None:
    from search.study import storage

    done = trials(shared)
    assert done[0].user_attrs["baseline"] == "weak" and done[0].value < done[1].value
    assert [r["trial"] for r in artifacts.kept(shared / "A" / "art")] == [1]
    dropped, kept = done[0].user_attrs["artifact_ids"], done[1].user_attrs["artifact_ids"]
    assert set(dropped) == set(kept) == {artifacts.WEIGHTS, artifacts.RECORD}  # both were uploaded when kept
    assert {p.name for p in (shared / "store").iterdir()} == set(kept.values())  # trial 0's files are gone
    # Optuna records each upload on the trial, which is what optuna-dashboard lists on the trial's page.
    listed = optuna.artifacts.get_all_artifact_meta(done[1], storage=storage.open_storage(
        str(shared / "db" / "journal.log")))
    assert {(m.filename, m.artifact_id) for m in listed} == set(kept.items())

    capsys.readouterr()
    assert main(["export", "art", "--trial", "0", "--results", str(shared / "C"), "--storage",
                 str(shared / "db" / "journal.log"), "--out", str(shared / "zero")]) == 2
    assert capsys.readouterr().err == (f"error: --trial 0: not kept in {shared / 'C' / 'art'} nor in the artifact "
                                       f"store {shared / 'store'} (pruned, failed or outside the best --keep-top)\n")
    assert not (shared / "zero").exists()
    assert not list((shared / "C").rglob("*00000*"))  # no half-fetched folder left behind
    # An ensemble counts what the store still holds: trial 1, fetched; not trial 0, whose files are gone.
    assert main(["export", "art", "--ensemble", "2", "--results", str(shared / "D"), "--storage",
                 str(shared / "db" / "journal.log")]) == 2
    assert capsys.readouterr().err == "error: --ensemble 2: only 1 kept trials to average (keep more with --keep-top)\n"
    assert [r["trial"] for r in artifacts.kept(shared / "D" / "art")] == [1]


def bad_locations(tmp_path: Path) -> list[tuple[str, str]]:
    """(LOCATION, what the one line says of it)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    return [(str(notes), "not a folder"),
            (str(notes / "store"), f"not a folder ({notes} is a file)"),
            ("gs://bucket", "unknown scheme 'gs'; give a folder or s3://BUCKET"),
            ("s3://bucket/models", "give a bucket, s3://BUCKET (Optuna's Boto3ArtifactStore keeps its files at the "
                                   "bucket's top)"),
            ("s3://bucket", "needs boto3: pip install -e '.[s3]'")]


@pytest.mark.fast
def test_a_bad_location_is_one_line_exit_2_and_nothing_is_written(tmp_path: Path, write_space, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as where boto3 is not installed
    space = write_space(SPACE, name="art.py")
    results = tmp_path / "results"
    for location, said in bad_locations(tmp_path):
        assert main(["run", str(space), "--trials", "1", "--results", str(results), "--artifacts", location]) == 2
        assert capsys.readouterr().err == f"error: --artifacts {location}: {said}\n"
    assert not results.exists()
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"


@pytest.mark.fast
def test_a_worker_refuses_a_recorded_store_it_cannot_use_and_export_a_bad_one(tmp_path: Path, capsys) -> None:
    from search.study import storage

    results = tmp_path / "results"
    (results / "art").mkdir(parents=True)
    study = optuna.create_study(study_name="art", storage=storage.open_storage(str(results / "art" / "journal.log")))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    study.set_user_attr("settings", {"artifacts": str(notes), "space_source": SPACE})
    before = sorted(results.rglob("*"))
    assert main(["worker", "--study", "art", "--results", str(results)]) == 2
    assert capsys.readouterr().err == f"error: --artifacts (recorded on the study) {notes}: not a folder\n"
    assert main(["export", "art", "--results", str(results), "--artifacts", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"error: --artifacts {tmp_path / 'nowhere'}: no such folder\n"
    assert sorted(results.rglob("*")) == before and notes.read_text() == "my notes\n"


@pytest.mark.fast
@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_store_is_one_line_exit_2(tmp_path: Path, write_space, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    space = write_space(SPACE, name="art.py")
    assert main(["run", str(space), "--results", str(tmp_path / "results"), "--artifacts", str(locked / "s")]) == 2
    assert capsys.readouterr().err == f"error: --artifacts {locked / 's'}: {locked} is not writable\n"
    assert not (tmp_path / "results").exists()
