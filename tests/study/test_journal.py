"""The journal file: one whose last record was torn is repaired on open and the repair names what the cut
took, worse damage is refused, a file Optuna did not make is refused untouched, the lock names its holder
and is broken when that holder is dead, and a full disk cuts no record short."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from helpers import journal_copy
from hypothesis import given
from hypothesis import strategies as st

from search.cli import main
from search.errors import InputError
from search.study import record, storage
from search.study.journal import JOURNAL, RESERVE, RESERVE_BYTES, repair_journal
from search.study.journal_lock import JournalLock, lock_holder
from search.study.studies import load_study


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


# A file the tool did not make is never changed: a storage path must hold an Optuna journal or nothing.

NOTES = b"Monday: try a wider first layer.\nTuesday: the journal goes in results/.\n"
JSON_LOG = b'{"time": "2026-01-01T00:00:00", "level": "info", "msg": "started"}\n{"op_code": 3, "msg": "x"}\n'


def a_real_journal() -> bytes:
    """The bytes of a small Optuna journal written by Optuna itself (no training: a quadratic)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "real.log"
        study = optuna.create_study(study_name="real", storage=JournalStorage(JournalFileBackend(str(path))))
        study.set_user_attr("seed", 0)
        study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=3)
        return path.read_bytes()


REAL_LINES = a_real_journal().split(b"\n")[:-1]


@st.composite
def file_contents(draw) -> bytes:
    """What a user's file at a --storage path may hold, and what a journal damaged or cut may hold."""
    return draw(st.one_of(
        st.binary(min_size=1, max_size=300),
        st.lists(st.text(max_size=40), min_size=1, max_size=6).map(lambda lines: "\n".join(lines).encode()),
        st.lists(st.dictionaries(st.sampled_from(["op_code", "worker_id", "msg", "study_id", "trial_id", "state"]),
                                 st.one_of(st.integers(-1, 12), st.text(max_size=6), st.none()), max_size=4),
                 min_size=1, max_size=5).map(lambda records: b"".join(json.dumps(r).encode() + b"\n" for r in records)),
        # Near misses of a journal's first record: cut anywhere, or with some of its keys, then anything.
        st.builds(lambda cut, rest: REAL_LINES[0][:cut] + rest, st.integers(0, len(REAL_LINES[0])),
                  st.binary(max_size=40)),
        st.builds(lambda record, rest: json.dumps(record, separators=(",", ":")).encode() + b"\n" + rest,
                  st.fixed_dictionaries({"op_code": st.just(0)}, optional={
                      "worker_id": st.one_of(st.text(max_size=8), st.integers()),
                      "study_name": st.one_of(st.text(max_size=8), st.none()),
                      "directions": st.one_of(st.lists(st.integers(1, 2), max_size=2), st.integers())}),
                  st.sampled_from([b"", *REAL_LINES[1:3]]).map(lambda line: line + b"\n" if line else line)),
        st.builds(lambda whole, rest: b"\n".join(REAL_LINES[:whole]) + b"\n" + rest,  # a journal, then anything
                  st.integers(1, len(REAL_LINES)), st.one_of(st.just(b""), st.binary(max_size=40),
                                                             st.sampled_from(REAL_LINES).map(lambda line: line[:-7]))),
    ))


def creates_a_study(line: bytes) -> bool:
    """Whether a line is the record that begins every Optuna journal: it creates a study."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return (isinstance(record, dict) and type(record.get("op_code")) is int and record["op_code"] == 0
            and isinstance(record.get("worker_id"), str) and isinstance(record.get("study_name"), str)
            and isinstance(record.get("directions"), list))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}


@pytest.mark.fast
@given(contents=file_contents())
def test_a_file_at_the_storage_path_is_an_optuna_journal_or_refused_and_never_changed_unless_a_journal(
        contents: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "notes.log"
        path.write_bytes(contents)
        before = snapshot(Path(folder))
        # Optuna's first record, the study's creation, whole; or nothing, as Optuna leaves a journal it opened
        journal_like = not contents or (b"\n" in contents and creates_a_study(contents.split(b"\n")[0]))
        try:
            storage.open_storage(str(path))
        except InputError as err:
            assert "\n" not in str(err) and str(err).startswith(f"{path}: ")
            assert snapshot(Path(folder)) == before  # refused: not a byte, not a time stamp, no file beside it
            if not journal_like:
                assert "is not an Optuna journal, so search leaves it as it is" in str(err)
            return
        assert journal_like, contents  # only a journal is taken
        torn = list(Path(folder).glob("notes.log.torn-*"))
        kept = path.read_bytes()
        if torn:  # a last record cut short: moved aside whole, the journal ends at the record before it
            assert kept + torn[0].read_bytes() == contents and kept.endswith(b"\n")
        else:
            assert kept in (contents, contents + b"\n")


@pytest.mark.fast
@pytest.mark.parametrize("contents", [NOTES, JSON_LOG, b"\x89PNG\r\n\x1a\n" + bytes(range(40))],
                         ids=["notes", "json-lines log", "binary"])
@pytest.mark.parametrize("command", [
    ["run", "{space}", "--trials", "1"], ["worker", "--study", "small"], ["confirm", "small"],
    ["replay", "small", "--trial", "0"], ["leaderboard", "small"], ["compare", "small"], ["report", "small"],
    ["export", "small"],
], ids=lambda command: command[0])
def test_every_command_refuses_a_storage_file_it_did_not_make_and_leaves_it_as_it_was(
        tmp_path: Path, write_space, capsys, contents: bytes, command: list[str]) -> None:
    space = write_space("SPACE = {'model': 'mlp', 'epochs': 1}\n", "small.py")
    notes = tmp_path / "notes.log"
    notes.write_bytes(contents)
    before = snapshot(tmp_path)
    argv = [part.format(space=space) for part in command]
    assert main([*argv, "--storage", str(notes), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {notes}: exists and is not an Optuna journal, so search leaves it as it is: give "
                   "--storage a new file, or the study's own\n")
    assert snapshot(tmp_path) == before  # the file as it was, and nothing made beside it (no results folder)


@pytest.mark.fast
def test_a_sqlite_path_that_is_not_a_database_is_refused_untouched(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.db"
    notes.write_bytes(NOTES)
    before = snapshot(tmp_path)
    assert main(["leaderboard", "small", "--storage", f"sqlite:///{notes}", "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {notes}: exists and is not a SQLite database")
    assert snapshot(tmp_path) == before


@pytest.mark.fast
def test_a_record_that_parses_but_is_not_one_is_damage_named_by_its_line(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    for damaged, line in ((b'{"op_code": 99, "worker_id": "w"}', 3), (b'{"op_code": 4}', 3), (b"[1, 2]", 3)):
        journal.write_bytes(b"\n".join([*REAL_LINES[:2], damaged, *REAL_LINES[2:]]) + b"\n")
        before = journal.read_bytes()
        with pytest.raises(InputError, match=rf"^{journal}: line {line} is not a journal record"):
            storage.open_storage(str(journal))
        assert journal.read_bytes() == before
    journal.write_bytes(b"\n".join(REAL_LINES) + b"\n")
    assert storage.open_storage(str(journal)).get_all_studies()[0].study_name == "real"


def small_journal(folder: Path) -> Path:
    """A journal holding one study of one finished trial, written through `open_storage`."""
    import optuna

    path = folder / "journal.log"
    study = optuna.create_study(study_name="s", storage=storage.open_storage(str(path)))
    study.tell(study.ask(), 1.0)
    return path


def dead_pid() -> int:
    """The pid of a process of this machine that has ended and been reaped."""
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.fast
def test_the_journal_lock_names_its_holder_and_a_dead_holder_s_lock_is_broken_at_once(tmp_path: Path,
                                                                                     capsys) -> None:
    import time

    journal = small_journal(tmp_path)
    lock = JournalLock(str(journal))
    assert lock.acquire()
    assert lock_holder(lock.file) == (record.HOST, os.getpid())
    lock.release()
    Path(lock.file).write_text(f"{record.HOST} {dead_pid()}\n")  # what a process killed holding it leaves
    started = time.monotonic()
    study = load_study("s", tmp_path, str(journal))  # opening takes the lock (the repair's check)
    study.tell(study.ask(), 2.0)
    # Optuna's own lock would wait out its 30 s grace, warning every 10 s.
    assert time.monotonic() - started < 10 and capsys.readouterr().err == ""
    assert not Path(lock.file).exists() and len(study.get_trials()) == 2


@pytest.mark.fast
def test_a_lock_whose_holder_lives_or_is_unknown_is_waited_for(tmp_path: Path) -> None:
    import threading
    import time

    journal = small_journal(tmp_path)
    lock = JournalLock(str(journal), grace_period=3)
    Path(lock.file).write_text(f"{record.HOST} {os.getppid()}\n")  # alive: the lock is held
    threading.Timer(1.0, lambda: os.unlink(lock.file)).start()
    started = time.monotonic()
    assert lock.acquire()
    assert 0.9 < time.monotonic() - started < 3
    lock.release()
    Path(lock.file).write_text("")  # Optuna's own lock names no holder: its grace period applies
    started = time.monotonic()
    assert lock.acquire()
    assert time.monotonic() - started > 2.9
    lock.release()


@pytest.mark.fast
def test_a_full_disk_takes_back_the_record_it_cut_and_leaves_the_lock_free(small_disk: Path) -> None:
    import optuna
    from helpers import fill

    from search.errors import DiskFull

    journal = small_journal(small_disk)
    study = optuna.load_study(study_name="s", storage=storage.open_storage(str(journal)))
    fill(small_disk, 2048)
    with pytest.raises(DiskFull, match=f"^{small_disk}: no space left on its disk"):
        for number in range(1000):
            study.set_user_attr(f"a{number}", "x" * 500)
    data = journal.read_bytes()
    assert data.endswith(b"\n") and all(json.loads(line) for line in whole_lines(data))
    assert not list(small_disk.glob("journal.log.lock*"))


@pytest.mark.fast
def test_a_torn_journal_on_a_full_disk_is_read_as_it_is_and_nothing_is_left_beside_it(small_disk: Path,
                                                                                       capsys) -> None:
    from helpers import fill

    journal = small_journal(small_disk)
    original = journal.read_bytes()
    os.truncate(journal, len(original) - 30)
    fill(small_disk, 0)
    before = sorted(p.name for p in small_disk.iterdir())
    assert main(["leaderboard", "s", "--results", str(small_disk.parent), "--storage", str(journal),
                 "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "no space left on its disk to move it aside" in err and err.count("\n") == 1
    assert journal.read_bytes() == original[:-30]
    assert sorted(p.name for p in small_disk.iterdir()) == before


@pytest.mark.fast
def test_a_trial_running_when_the_disk_fills_up_can_still_be_ended(small_disk: Path) -> None:
    import optuna
    from helpers import fill

    from search.errors import DiskFull

    journal = small_journal(small_disk)
    reserve = journal.with_name(JOURNAL + RESERVE)
    assert reserve.stat().st_blocks * 512 >= RESERVE_BYTES  # taken on the disk, not only promised
    study = optuna.load_study(study_name="s", storage=storage.open_storage(str(journal)))
    trial = study.ask()
    fill(small_disk, 0)
    for number in range(10):  # 5,000 bytes: more than the journal's last page has free, so the disk refuses
        trial.set_user_attr(f"a{number}", "x" * 500)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert not reserve.exists()
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "FAIL"]
    with pytest.raises(DiskFull):  # with the reserve spent, the next writes stop on the full disk as before
        for number in range(1000):
            study.set_user_attr(f"b{number}", "x" * 500)
    data = journal.read_bytes()
    assert data.endswith(b"\n") and all(json.loads(line) for line in whole_lines(data))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["confirm", "run"])
def test_sigterm_while_a_command_opens_the_study_or_queues_trials_leaves_no_lock_and_is_exit_130(
        finished_study: Path, tmp_path: Path, command: str) -> None:
    import signal
    import subprocess
    import sys
    import time

    journal = journal_copy(finished_study, tmp_path)
    results = journal.parent.parent
    argv = (["confirm", "small", "--top", "20", "--seeds", "100"] if command == "confirm" else
            ["run", str(finished_study.parent / "small.py"), "--trials", "8", "--epochs", "1", "--train-size", "500"])
    size = journal.stat().st_size
    process = subprocess.Popen([sys.executable, "-m", "search", *argv, "--results", str(results)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while journal.stat().st_size == size and time.monotonic() < deadline:  # its first write: the set-up is under way
        time.sleep(0.001)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    # Killed where the signal landed (the default action), it could leave the lock held, or a record cut short.
    assert process.returncode == 130, output
    assert "run the same command to resume" in output
    assert not list(journal.parent.glob("journal.log.lock*"))
    assert journal.read_bytes().endswith(b"\n")


# A torn last record: the repair names exactly the trial whose state it set, read against the journal.

def journal_ending_with(last: str, folder: Path) -> Path:
    """A journal written through `open_storage` (so as `search` writes it) whose last record is `last`: the
    end of a trial (complete, pruned or failed), the end of a surplus trial, the start of a queued trial, a
    user attribute, or a trial's creation. Every running trial names a dead process, as after a power cut."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = folder / "journal.log"
    study = optuna.create_study(study_name="s", storage=storage.open_storage(str(path)))
    for number in range(11):  # trial ids past 9, so that a cut inside a two-digit id shows
        study.tell(study.ask(), float(number))
    trial = study.ask() if last != "start" else None
    if trial is not None:
        record.write(trial, {record.Attr.HOST: record.HOST, record.Attr.PID: dead_pid()})
    if last == "complete":
        study.tell(trial, 1.0)
    elif last in ("pruned", "fail"):
        study.tell(trial, state=TrialState[last.upper()])
    elif last == "surplus":
        record.write(trial, {record.Attr.SURPLUS: True, record.Attr.REASON: "not run: the budget of 11 trials is taken"})
        study.tell(trial, state=TrialState.FAIL)
    elif last == "attribute":
        record.write(trial, {record.Attr.SEED: 7})
    elif last == "start":
        study.enqueue_trial({})
        study.ask()
    return path


def end_of(line: bytes, key: str) -> int:
    """Where the number `key` holds in a compact record ends: the byte after its last digit, which a cut
    must leave for the number to be read whole (`1` may be the start of `12`); past the line if absent."""
    found = re.search(rb'"%s":(\d+)' % key.encode(), line)
    return found.end() if found else len(line)


ENDINGS = ["complete", "pruned", "fail", "surplus", "start", "attribute", "create"]
JOURNALS: dict[str, bytes] = {}


def ending(last: str) -> bytes:
    if last not in JOURNALS:
        with tempfile.TemporaryDirectory() as folder:
            JOURNALS[last] = journal_ending_with(last, Path(folder)).read_bytes()
    return JOURNALS[last]


@pytest.mark.fast
@given(last=st.sampled_from(ENDINGS), data=st.data())
def test_a_torn_last_record_names_exactly_the_trial_whose_state_it_set(last: str, data: st.DataObject) -> None:
    import optuna

    original = ending(last)
    whole = whole_lines(original)
    record_line = whole[-1]
    keep = len(original) - len(record_line) - 1  # the journal up to its last record
    cut = data.draw(st.integers(1, len(record_line) - 1), label="bytes of the last record left")
    # What the record did, from the journal whole: the trial it set a state of, and which.
    parsed = json.loads(record_line)
    sets_state = parsed["op_code"] == 6
    with tempfile.TemporaryDirectory() as folder:
        journal = Path(folder) / "journal.log"
        journal.write_bytes(original[:keep + cut])
        repaired = repair_journal(journal, JournalLock(str(journal)))
        assert repaired is not None and journal.read_bytes() == original[:keep]
        opened = storage.open_storage(str(journal))
        said = repaired.lost(opened)
        study = optuna.load_study(study_name="s", storage=opened)
        named = {int(n) for n in re.findall(r"trial (\d+)", said)}
        told, known_kind = (cut > end_of(record_line, key) for key in ("trial_id", "op_code"))
        if not sets_state:  # no trial's state was cut off
            assert named == set() and "lost its end" not in said, said
            assert ("no finished trial was lost" in said) == known_kind, said
            return
        trial = study._storage.get_trial(parsed["trial_id"])
        if not told:  # the cut came before the record named its trial: it says so, and names none
            assert named == set() and "no finished trial was lost" not in said and "if it ended" in said, said
            return
        assert named == {trial.number}, said  # exactly the trial whose state the record set
        if last == "start":
            assert said == f"trial {trial.number} lost its start: it waits to run"
        elif last == "surplus":  # it never ran: nothing lost, and no retry queued that could never run
            assert "lost its end" not in said and "nothing was lost" in said, said
            storage.reap_dead(study)
            assert [t.state.name for t in study.get_trials()][-1] == "FAIL" and not study.get_trials(
                states=(optuna.trial.TrialState.WAITING,))
        else:
            assert said.startswith(f"trial {trial.number} lost its end"), said
            assert storage.reap_dead(study) == [trial.number]  # the next run fails it and runs its place again
            assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1
