"""Studies side by side (`report A B`): two real short searches on one page, in a real browser; bad input refused."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import CHROMIUM, SEARCH_SPACE, headless_chromium, page_errors, recorded

from search.cli import main
from search.results.compared import write_compared
from search.study.storage import open_storage
from search.study.studies import load_study

STUDIES = {"wide": 0, "narrow": 1}  # name: seed; the same small space, so the pages differ by their trials
# Per figure, as plotly.js holds it: [study, trial] of every point (customdata[2] and [0]).
POINTS = """return [...document.querySelectorAll('.plotly-graph-div')].map(div => [div.id,
    div.data.flatMap(trace => (trace.customdata || []).map(point => [point[2], point[0]]))]);"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished three-trial searches (a baseline and two searched trials, one epoch on 2,000 images)
    and a study with no finished trial, in one results folder."""
    folder = tmp_path_factory.mktemp("compared")
    results = folder / "results"
    for name, seed in STUDIES.items():
        space = folder / f"{name}.py"
        space.write_text("from search.space import Choice, Float, Int, Repeat\n" + SEARCH_SPACE)
        assert main(["run", str(space), "--trials", "3", "--epochs", "1", "--train-size", "2000", "--seed", str(seed),
                     "--workers", "1", "--results", str(results)]) == 0
    optuna.create_study(study_name="empty", storage=open_storage(str(results / "empty" / "journal.log")))
    return results


def snapshot(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under `folder`, and each file's size and time of change (a journal's lock file comes and goes,
    so a folder's own time may change while nothing in it does)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in folder.rglob("*")}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium chromium-driver)")
def test_two_studies_on_one_page_in_headless_chromium(results: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("selenium.webdriver")
    assert main(["report", "wide", "narrow.py", "--results", str(results)]) == 0
    page = results / "wide+narrow" / "report.html"
    assert f"wrote {page}" in capsys.readouterr().out
    for name in ("best_by_trial", "best_by_time"):
        assert (results / "wide+narrow" / "report" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    complete = {(name, t.number) for name in STUDIES for t in load_study(name, results).trials
                if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(complete) == 6
    with headless_chromium(tmp_path / "profile") as driver:
        driver.get(page.as_uri())
        assert page_errors(driver) == []
        # Both figures hold every completed trial of both studies, each point naming its study.
        shown = {name: {(study, int(trial)) for study, trial in points}
                 for name, points in driver.execute_script(POINTS)}
        assert shown == {"best_by_trial-plot": complete, "best_by_time-plot": complete}
        # Hovering a point shows its study, trial and accuracy (plotly's own hover on narrow's trial 2).
        label = driver.execute_script("""const div = document.getElementById('best_by_trial-plot');
            const trace = div.data.findIndex(t => (t.customdata || []).some(p => p[2] === 'narrow'));
            const point = div.data[trace].customdata.findIndex(p => p[0] === 2);
            Plotly.Fx.hover(div, [{curveNumber: trace, pointNumber: point}]);
            return div.querySelector('.hoverlayer').textContent;""")
        assert re.match(r"study narrow, trial 2complete: validation 0\.\d{4}, test 0\.\d{4}", label), label
        sections = driver.execute_script("return [...document.querySelectorAll('section')].map(s => s.id)")
        answer = driver.find_element("id", "answer").text
    assert sections == ["answer", "best_by_trial", "best_by_time", "studies"]
    # The answer names each study's trial selected by validation, with both accuracies as its leaderboard has them.
    picks = {}
    for name in STUDIES:
        board = pd.read_csv(results / name / "leaderboard.csv")
        picks[name] = board[board["selected"]].iloc[0]
        row = picks[name]
        assert (f"{name}: trial {row['trial']}" in answer and f"validation {100 * row['val_accuracy']:.2f}%, test "
                f"{100 * row['test_accuracy']:.2f}%" in answer), (name, answer)
    best = max(STUDIES, key=lambda name: picks[name]["val_accuracy"])
    assert answer.split("\n")[1].startswith(f"Best by validation accuracy: {best}, its trial {picks[best]['trial']} ")


@pytest.mark.parametrize(("studies", "message"), [
    (["wide", "missing"], "missing: no study found at"),
    (["wide", "narrow", "wide.py"], "wide.py: named twice (study 'wide', already named as wide): name each study once"),
    (["narrow", "narrow"], "narrow: named twice: name each study once"),
    (["wide", "empty"], "study 'empty' has no finished trials yet: nothing to compare"),
    (["wide", "narrow", "--artifacts", "store"], "--artifacts store: a page of several studies runs no model"),
])
def test_bad_studies_are_one_line_exit_2_and_nothing_is_written(results: Path, capsys, studies: list[str],
                                                               message: str) -> None:
    before = snapshot(results)
    assert main(["report", *studies, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    assert snapshot(results) == before


@pytest.mark.fast
def test_the_answer_leads_with_the_study_best_by_validation(tmp_path: Path) -> None:
    studies = [recorded([("complete", 0.95, 0.94, {}), ("pruned", 0.5, None, {})], "first"),
               recorded([("complete", 0.97, 0.93, {}), ("complete", 0.96, 0.96, {})], "second"),
               recorded([("pruned", 0.4, None, {})], "third")]
    page = write_compared(studies, tmp_path).read_text()
    assert page == (tmp_path / "first+second+third" / "report.html").read_text()
    answer = re.search(r'<section id="answer">(.*?)</section>', page, re.S).group(1)  # type: ignore[union-attr]
    # Chosen by validation (0.97), although the other trial of the same study tests better.
    assert "Best by validation accuracy: second, its trial 0 with validation 97.00% and test 93.00%; then first, " \
           "trial 0: validation 95.00%, test 94.00%." in answer
    items = re.findall(r"<li>(.*?)</li>", answer)
    assert [item.split(":")[0] for item in items] == ["second", "first", "third"]
    assert items[2] == "third: no trial has completed yet."
    assert page.count("No completed trial yet in third.") == 2  # under each figure
    assert sorted(p.name for p in (tmp_path / "first+second+third" / "report").iterdir()) == [
        "best_by_time.png", "best_by_trial.png"]
