"""The report of a real short search: files on disk, a self-contained page, and a real browser running it."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import CHROMIUM, headless_chromium, page_errors

from search.cli import main
from search.errors import InputError
from search.results.report import write_report
from search.study import artifacts, record
from search.study.storage import open_storage
from search.study.studies import load_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ["best_by_trial", "best_by_time", "importances", "pareto", "learning_curves", "rungs", "confusion_matrix",
           "misclassified"]  # as PNGs
INTERACTIVE = ["best_by_trial", "best_by_time", "importances", "parallel_coordinates", "pareto", "learning_curves",
               "rungs"]
SECTIONS = [*INTERACTIVE, "confusion_matrix", "misclassified"]
EMBEDDED_PNG = '<img src="data:image/png;base64,'  # the figures plotly does not draw
# Two searched dimensions (so importances exist) and learning rates far apart (so some trials learn
# and some barely move, and the median pruner has something to prune after its five start-up trials).
# Three epochs, because the search never prunes a trial at its last epoch and never before its second.
SPACE = """
SPACE = {
    "model": "mlp",
    "layers": [{"units": Int(16, 64, log=True)}],
    "learning_rate": Choice([3e-3, 1e-6]),
    "batch_size": 128,
}
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, Path]:
    """A finished six-trial search (three epochs, 2,000 training images) and its results folder."""
    folder = tmp_path_factory.mktemp("report")
    space, results = folder / "reported.py", folder / "results"
    space.write_text("from search.space import Choice, Float, Int, Repeat\n" + SPACE)
    assert main(["run", str(space), "--trials", "6", "--epochs", "3", "--train-size", "2000", "--seed", "0", "--workers", "1",
                 "--results", str(results), "--pruner", "median"]) == 0
    study = load_study("reported", results)
    return study, results / "reported"


@pytest.fixture(scope="module")
def report(searched: tuple[optuna.Study, Path]) -> Path:
    return write_report(*searched)


def test_report_holds_leaderboard_and_every_figure_as_png(searched: tuple[optuna.Study, Path], report: Path) -> None:
    study, study_dir = searched
    assert report == study_dir / "report.html"
    page = report.read_text()
    finished = [t for t in study.trials if t.state.is_finished()]
    rows = re.search(r'<table[^>]*id="leaderboard".*?<tbody>(.*?)</tbody>', page, re.S)
    assert rows and rows.group(1).count("<tr>") == len(finished) == 6
    pruned = [t for t in finished if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == 1 and "<td>pruned</td>" in page  # trial 5 (learning rate 1e-6)
    assert "Learning curves: the best 5 completed trials (solid) and 1 pruned (dashed)" in page
    # Where the training went: the pruned trial stopped after epoch 2, the others trained all 3.
    seconds = {epochs: sum(t.user_attrs["train_seconds"] for t in finished if t.user_attrs["epochs"] == epochs)
               for epochs in (2, 3)}
    assert f"2 epochs: 1 trial, {seconds[2]:,.0f} s" in page and f"3 epochs: 5 trials, {seconds[3]:,.0f} s" in page
    for name in FIGURES:
        png = (study_dir / "report" / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 2000, name
        assert f'id="{name}"' in page, name
    # Each section shows its figure, not a note instead: interactive where plotly draws it, else the PNG.
    assert re.findall(r'<div id="([a-z_]+)-plot" class="plotly-graph-div"', page) == INTERACTIVE
    assert page.count(EMBEDDED_PNG) == 2 and 'class="note"' not in page
    assert not re.search(r"https?://", re.sub(r"<script.*?</script>", "", page, flags=re.S))  # nothing to fetch
    assert not list(study_dir.rglob("*.partial"))
    best = artifacts.kept(study_dir)[0]
    # The trial best by validation, rebuilt from its kept weights, reproduces the test accuracy it recorded.
    assert (f"trial {best['trial']}, the trial best by validation: test accuracy {best['test_accuracy']:.4f} "
            "on 10,000") in page


def test_report_of_a_running_study_without_kept_weights(searched: tuple[optuna.Study, Path], tmp_path: Path) -> None:
    _, study_dir = searched
    shutil.copy(study_dir / "journal.log", tmp_path / "journal.log")
    study = optuna.load_study(study_name="reported", storage=open_storage(str(tmp_path / "journal.log")))
    study.ask()  # a trial still running, as while a search goes on
    before = (tmp_path / "journal.log").read_bytes()
    page = write_report(study, tmp_path / "elsewhere").read_text()
    assert (tmp_path / "journal.log").read_bytes() == before  # the report only reads the study
    assert re.search(r"<tbody>(.*?)</tbody>", page, re.S).group(1).count("<tr>") == 6  # type: ignore[union-attr]
    assert "No kept trial weights in" in page and page.count(EMBEDDED_PNG) == 0
    assert sorted(p.stem for p in (tmp_path / "elsewhere" / "report").glob("*.png")) == sorted(FIGURES[:-2])


def test_study_without_finished_trials_is_an_input_error(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(InputError, match="^study 'empty' has no finished trials yet: nothing to report$"):
        write_report(study, tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_importances_need_two_searched_parameters(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    page = write_report(study, tmp_path).read_text()
    assert "Importances need at least 2 completed trials" in page and "searches x." in page


# For each interactive figure, as plotly.js holds it: the trial numbers its points carry (customdata[0]).
TRIALS_SHOWN = """return [...document.querySelectorAll('.plotly-graph-div')].map(div =>
    [div.id, div.data.flatMap(trace => (trace.customdata || []).map(point => point[0]))]);"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium chromium-driver)")
def test_report_renders_in_headless_chromium(searched: tuple[optuna.Study, Path], report: Path,
                                             tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    with headless_chromium(tmp_path / "profile") as driver:
        driver.get(report.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        assert page_errors(driver) == []
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
        assert not [url for url in fetched if not url.startswith(("data:", "file:"))], fetched
        rows = driver.execute_script("return document.querySelectorAll('#leaderboard tbody tr').length")
        assert rows == 6
        widths = driver.execute_script("return [...document.images].map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) == 2 and all(width > 0 for width in widths), widths
        # Plotly drew each figure (an SVG of its own) and holds the study's trials in it.
        shown = dict(driver.execute_script(TRIALS_SHOWN))
        assert list(shown) == [f"{name}-plot" for name in INTERACTIVE]
        drawn = driver.execute_script("return [...document.querySelectorAll('.plotly-graph-div')]"
                                      ".map(div => div.querySelectorAll('svg.main-svg').length)")
        assert all(count > 0 for count in drawn), drawn
        study, _ = searched
        complete = {t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
        finished = {t.number for t in study.trials if t.state.is_finished()}
        for name in ("best_by_trial-plot", "best_by_time-plot", "parallel_coordinates-plot", "pareto-plot"):
            assert set(shown[name]) == complete, name
        assert set(shown["learning_curves-plot"]) == finished  # the pruned trial's curve too
        assert sorted(shown["rungs-plot"]) == sorted(finished)  # every searched trial that ended, once
        assert shown["importances-plot"] == []  # a bar per hyperparameter, not per trial
        # Hovering a point shows its trial: plotly's own hover, on the chosen trial's point of the size figure.
        chosen = min(complete, key=lambda n: record.by_validation(record.read(study.trials[n])))
        label = driver.execute_script("""const div = document.getElementById('pareto-plot');
            const trace = div.data.findIndex(t => (t.customdata || []).some(p => p[0] === arguments[0]));
            const point = div.data[trace].customdata.findIndex(p => p[0] === arguments[0]);
            Plotly.Fx.hover(div, [{curveNumber: trace, pointNumber: point}]);
            return div.querySelector('.hoverlayer').textContent;""", chosen)
        assert label.startswith(f"trial {chosen}complete: validation ") and "mlp " in label, label
        # The whole page, not just the window: DevTools can capture beyond the viewport.
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        screenshot = tmp_path / "report.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        assert screenshot.read_bytes().startswith(PNG_MAGIC) and screenshot.stat().st_size > 50_000


def test_report_command_on_a_real_study(finished_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "small.py", "--results", str(finished_study)]) == 0
    html = (finished_study / "small" / "report.html").read_text()
    assert html.count('class="plotly-graph-div"') >= 5 and "leaderboard" in html
    assert "report.html" in capsys.readouterr().out
    assert main(["report", "missing", "--results", str(finished_study)]) == 2


def test_the_report_leads_with_the_model_chosen_by_validation_and_ends_with_the_table(
        searched: tuple[optuna.Study, Path], report: Path) -> None:
    study, study_dir = searched
    page = report.read_text()
    sections = re.findall(r'<section id="([^"]+)"', page)
    assert sections[0] == "answer" and sections[-1] == "all-trials" and sections[1:-1] == SECTIONS
    board = pd.read_csv(study_dir / "leaderboard.csv")
    chosen = board[board["selected"]].iloc[0]
    answer = re.search(r'<section id="answer">(.*?)</section>', page, re.S).group(1)  # type: ignore[union-attr]
    assert (f"Selected by validation accuracy: trial {chosen['trial']}," in answer
            and f"validation {100 * chosen['val_accuracy']:.2f}%, test {100 * chosen['test_accuracy']:.2f}%" in answer)
    assert chosen["val_accuracy"] == board[board["state"] == "complete"]["val_accuracy"].max()
