"""Where studies live: a journal whose last record was torn is repaired on open, worse damage refused,
and paths the user gives are checked before anything is written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from search.cli import main
from search.errors import InputError
from search.study import record, storage
from search.study.studies import load_study


def journal_copy(finished_study: Path, tmp_path: Path) -> Path:
    """A copy of a real finished study's results folder; returns its journal."""
    results = tmp_path / "results"
    shutil.copytree(finished_study, results)
    return results / "small" / storage.JOURNAL


def whole_lines(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n")[:-1]]


def test_a_torn_last_record_is_moved_aside_and_named_and_run_resumes_to_the_budget(
        finished_study: Path, tmp_path: Path, capsys) -> None:
    journal = journal_copy(finished_study, tmp_path)
    original = journal.read_bytes()
    last = whole_lines(original)[-1]
    assert json.loads(last)["op_code"] == 6 and json.loads(last)["state"] == 1  # the last trial's end
    os.truncate(journal, len(original) - 50)  # what a power cut leaves: the newline and 49 bytes of the record
    torn = last[:-49]

    assert main(["leaderboard", "small", "--results", str(journal.parent.parent), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    moved = list(journal.parent.glob("journal.log.torn-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == torn  # kept, never deleted
    number = load_study("small", journal.parent.parent).get_trials(deepcopy=False)[-1].number
    assert err.count("\n") == 1 and err.startswith(f"warning: {journal}: its last record was cut short "
                                                   f"({len(torn)} bytes")
    assert f"trial {number} lost its end (complete)" in err
    assert journal.read_bytes() == original[: len(original) - len(last) - 1]  # ends at the last whole record
    assert all(json.loads(line) for line in whole_lines(journal.read_bytes()))

    # The study is whole again: run resumes to exactly its budget of 5, no traceback.
    space = finished_study.parent / "small.py"
    assert main(["run", str(space), "--trials", "5", "--epochs", "2", "--train-size", "2000", "--seed", "0",
                 "--workers", "1", "--results", str(journal.parent.parent)]) == 0
    trials = load_study("small", journal.parent.parent).get_trials(deepcopy=False)
    assert record.counted(trials) == 5 and record.read(trials[number]).state == "lost"
    assert "Traceback" not in capsys.readouterr().err


def test_a_cut_inside_an_earlier_record_keeps_every_whole_record_before_it(finished_study: Path,
                                                                           tmp_path: Path) -> None:
    journal = journal_copy(finished_study, tmp_path)
    original = journal.read_bytes()
    lines = whole_lines(original)
    keep = len(lines) // 2
    cut = sum(len(line) + 1 for line in lines[:keep]) + len(lines[keep]) // 2  # inside record keep + 1
    os.truncate(journal, cut)
    study = load_study("small", journal.parent.parent)
    assert whole_lines(journal.read_bytes()) == lines[:keep]
    # Exactly the trials those records hold survive: the same as a journal written only that far.
    reference = tmp_path / "reference.log"
    reference.write_bytes(b"\n".join(lines[:keep]) + b"\n")
    expected = storage.open_storage(str(reference))
    survivors = [(t.number, t.state, t.user_attrs) for t in study.get_trials(deepcopy=False)]
    assert survivors == [(t.number, t.state, t.user_attrs) for t in
                         expected.get_all_trials(expected.get_all_studies()[0]._study_id, deepcopy=False)]
    assert 0 < len(survivors) < 5


def test_a_journal_whole_but_for_its_last_newline_loses_nothing(finished_study: Path, tmp_path: Path,
                                                                capsys) -> None:
    journal = journal_copy(finished_study, tmp_path)
    original = journal.read_bytes()
    os.truncate(journal, len(original) - 1)
    assert len(load_study("small", journal.parent.parent).get_trials()) == 5
    assert journal.read_bytes() == original and capsys.readouterr().err == ""
    assert not list(journal.parent.glob("journal.log.torn-*"))


def test_damage_before_the_last_record_is_one_line_naming_the_file_and_line(finished_study: Path,
                                                                           tmp_path: Path, capsys) -> None:
    journal = journal_copy(finished_study, tmp_path)
    lines = whole_lines(journal.read_bytes())
    lines[3] = lines[3][:20] + b"\x00garbage"
    journal.write_bytes(b"\n".join(lines) + b"\n")
    before = journal.read_bytes()
    with pytest.raises(InputError, match=rf"^{journal}: line 4 is not a journal record"):
        storage.open_storage(str(journal))
    assert main(["leaderboard", "small", "--results", str(journal.parent.parent)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {journal}: line 4 is not a journal record")
    assert journal.read_bytes() == before and not list(journal.parent.glob("journal.log.torn-*"))


@pytest.mark.fast
@pytest.mark.parametrize(("given", "message"), [
    ("{tmp}/missing/x.log", "--storage {tmp}/missing/x.log: folder {tmp}/missing does not exist"),
    ("sqlite:///{tmp}/missing/x.db", "--storage sqlite:///{tmp}/missing/x.db: folder {tmp}/missing does not exist"),
    ("{tmp}", "--storage '{tmp}': expected a journal file path ending in .log"),
])
def test_a_storage_path_under_a_missing_folder_is_refused(tmp_path: Path, given: str, message: str) -> None:
    from search.study.studies import storage_url

    with pytest.raises(InputError) as caught:
        storage_url("s", given.format(tmp=tmp_path), tmp_path / "results")
    assert str(caught.value).startswith(message.format(tmp=tmp_path))
    assert not (tmp_path / "missing").exists()


def test_a_results_folder_belongs_to_the_storage_of_its_study(finished_study: Path, tmp_path: Path,
                                                              capsys) -> None:
    journal = journal_copy(finished_study, tmp_path)
    results, folder = journal.parent.parent, journal.parent
    assert (folder / storage.OWNER).read_text() == "journal.log\n"  # run recorded it
    database = tmp_path / "small.db"
    before = {path: path.stat().st_mtime_ns for path in folder.rglob("*")}

    # A study of the same name in another storage would mix its trials' kept weights, exports and
    # report with this one's: every command refuses it in one line, before anything is written.
    for command in (["leaderboard", "small"], ["report", "small"], ["export", "small"],
                    ["run", str(folder / "space.py"), "--study", "small", "--trials", "6"]):
        assert main([*command, "--results", str(results), "--storage", f"sqlite:///{database}"]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: {folder}: holds the files of study 'small' stored in the journal {journal}, not of "
                       f"the one in sqlite:///{database}: pass --results DIR to keep the two apart\n")
    assert not database.exists() and {path: path.stat().st_mtime_ns for path in folder.rglob("*")} == before
    # Its own journal, named by path, is the same storage.
    assert main(["leaderboard", "small", "--results", str(results), "--storage", str(journal), "--format", "csv"]) == 0

    # A database's folder records its URL without the password, and refuses the default journal.
    other = tmp_path / "elsewhere" / "small"
    storage.claim_folder(other, "postgresql://ann:s3cret@db/search")
    assert (other / storage.OWNER).read_text() == "postgresql://ann:***@db/search\n"
    storage.check_folder(other, "postgresql://ann:changed@db/search")  # the same database
    with pytest.raises(InputError, match=r"stored in postgresql://ann:\*\*\*@db/search, not of the one in "):
        storage.check_folder(other, storage.default_location(other.parent, "small"))
