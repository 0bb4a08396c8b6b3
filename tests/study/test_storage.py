"""Where studies live: the storage paths the user gives are checked before anything is written, a results
folder belongs to the storage of its study, and every location shown hides its password."""

from __future__ import annotations

import string
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import journal_copy
from hypothesis import assume, given
from hypothesis import strategies as st

from search.cli import main
from search.errors import InputError
from search.study import storage
from search.study.storage import redact, redact_command


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


# Secrets: every storage location shown, logged or written goes through storage.redact.

HOSTS = st.text(string.ascii_lowercase, min_size=1, max_size=8)
# Passwords with what breaks naive masks: @ : / ? # & = % and spaces, percent escapes, any letter.
PASSWORDS = st.one_of(
    st.text(st.sampled_from("@:/?#&=% +ab9é€"), min_size=1, max_size=12),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12),
    st.builds(lambda pw: quote(pw, safe=""), st.text(min_size=1, max_size=8)),  # an escape as the secret itself
)


def _other_letters(password: str) -> str:
    """The same password with every letter and digit changed, its punctuation kept in place."""
    return "".join(("y" if char == "x" else "x") if char.isalnum() else char for char in password)


@st.composite
def storage_urls(draw) -> tuple[str, str, str, str]:
    """A database URL holding a password in one of the forms users write, that password, the URL
    without it, and the URL with a twin password: its letters and digits changed, its punctuation kept."""
    password = draw(PASSWORDS)
    escaped = draw(st.booleans())  # as typed, or escaped as it should be
    written, twin = ((quote(pw, safe="") if escaped else pw) for pw in (password, _other_letters(password)))
    scheme = draw(st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql", "oracle"]))
    user = draw(st.one_of(st.just(""), HOSTS))  # an empty user name too
    host = draw(HOSTS) + draw(st.sampled_from(["", ":5432"]))
    database = draw(HOSTS)
    extra = draw(st.sampled_from(["", "sslmode=require", "application_name=x"]))
    form = draw(st.sampled_from(["user", "query", "both"]))
    userinfo = f"{user}:{{0}}@" if form in ("user", "both") else (f"{user}@" if user else "")
    query = "&".join(filter(None, [extra, "password={0}" if form in ("query", "both") else ""]))
    template = f"{scheme}://{userinfo}{host}/{database}" + (f"?{query}" if query else "")
    return template.format(written), password, template.format(""), template.format(twin)


@pytest.mark.fast
@given(storage_urls())
def test_a_redacted_url_shows_no_part_of_its_password(case: tuple[str, str, str, str]) -> None:
    url, password, skeleton, twin = case
    shown = redact(url)
    for form in {password, quote(password, safe=""), quote(password)}:
        assume(form not in skeleton and form not in "***")  # a password that is also the host's name shows as that
        assert form not in shown, (url, shown)
    # Not even part of it: the text shown is the same whatever the password's letters and digits.
    assert redact(twin) == shown, (url, shown, redact(twin))
    assert redact_command(["run", "--storage", url, f"--storage={url}"]) == ["run", "--storage", shown,
                                                                            f"--storage={shown}"]


@pytest.mark.fast
@pytest.mark.parametrize(("location", "shown"), [
    ("postgresql://search:s3cret@db:5432/search", "postgresql://search:***@db:5432/search"),
    ("postgresql://:s3cret@db/search", "postgresql://:***@db/search"),  # no user name
    ("postgresql://ann@db/search?sslmode=require&password=s3cret", "postgresql://ann@db/search?***"),
    ("postgresql://ann:s3c@ret@db/search", "postgresql://***"),  # an unescaped @: where the password ends is a guess
    ("postgresql://ann:s3c%40ret@db/search", "postgresql://ann:***@db/search"),
    ("postgresql://db:5432/search?password=9@9", "postgresql://***"),  # else it reads user db, host 9
    ("postgresql://ann@db/search?sslmode=require", "postgresql://ann@db/search?sslmode=require"),
    ("sqlite:///results/x.db", "sqlite:///results/x.db"),
    ("results/mlp/journal.log", "results/mlp/journal.log"),
    ("ann:s3cret@db/search", "***@db/search"),  # a URL without its scheme
    ("postgresql://ann:s3cret@db:port/search", "postgresql://***"),  # SQLAlchemy cannot read it
])
def test_redact_keeps_what_locates_the_storage_and_hides_the_rest(location: str, shown: str) -> None:
    assert redact(location) == shown
