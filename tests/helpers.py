"""What tests share beyond fixtures: the repository's root, small space files, expected CPU kernels, a browser,
a copy of a finished study."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState, create_trial

from search.study import record
from search.study.journal import JOURNAL
from search.study.record import Attr

ROOT = Path(__file__).resolve().parent.parent  # the repository: spaces/, search/, README.md


def expected_kernels(models: set[str], threads: int) -> str:
    """The CPU kernels a worker training `models` on `threads` threads records with its trials:
    TF_ENABLE_ONEDNN_OPTS as set around the tests, or else what `search.runtime.use_onednn` picks."""
    from search.training.runtime import onednn_wanted

    return "oneDNN" if onednn_wanted(models, threads) else "Eigen"


# A small searched MLP with one baseline: what the study, run and CLI tests search.
SEARCH_SPACE = """
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(32, 128, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 64,
}
BASELINES = {"tiny": {"model": "mlp", "layers": [{"units": 32}], "learning_rate": 3e-3, "batch_size": 64}}
"""

SMALL_SPACE = """
from search.space import Choice, Float, Int, Repeat
SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(16, 64, log=True)}),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "batch_size": 128,
}
BASELINES = {
    "broken": {"model": "mlp", "layers": [{"units": 16}], "optimizer": "sgd", "learning_rate": 1e30},  # its loss becomes NaN: a failed trial
    "tiny": {"model": "mlp", "layers": [{"units": 16}], "learning_rate": 3e-3},
}
"""


def recorded(rows: list[tuple[str, float, float | None, dict]], name: str | None = None) -> optuna.Study:
    """An in-memory study of trials written through the trial record, as the lifecycle writes them: (state, best
    validation accuracy, test accuracy, extra attributes) each."""
    study = optuna.create_study(study_name=name, direction="maximize")
    for number, (state, val, test, extra) in enumerate(rows):
        attrs = {**record.outcome([val / 2, val], 1.0, n_params=1000 + number, best_epoch=2, test_accuracy=test,
                                  reason=None if state == "complete" else f"{state} for a reason"),
                 Attr.CONFIG: {"model": "mlp", "layers": [{"units": 16 + number}]}, Attr.SEED: number, **extra}
        study.add_trial(create_trial(state=TrialState[state.upper()], value=val if state == "complete" else None,
                                     user_attrs={str(k): v for k, v in attrs.items()},
                                     intermediate_values={0: val / 2, 1: val}))
    return study


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Collects what a page's scripts throw, from before the first of them runs (console errors come from the log).
CATCH_ERRORS = """window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
window.addEventListener('unhandledrejection', e => window.__errors.push(String(e.reason)));"""


@contextmanager
def headless_chromium(profile: Path) -> Iterator[Any]:
    """Debian's Chromium through Selenium, offline as a plane seat (any http(s) request fails and shows up as a
    console error), collecting the errors a page's scripts throw in `window.__errors`."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,2000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from looking for (and downloading) one.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*"]})
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_ERRORS})
        yield driver
    finally:
        driver.quit()


def page_errors(driver: Any) -> list[str]:
    """What the page's scripts threw, and the console's severe messages (a blocked request among them)."""
    thrown = list(driver.execute_script("return window.__errors"))
    return thrown + [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of `folder` up to `leave` free bytes, with a file that stays there. A process writing
    there meanwhile may take the last bytes first: the disk is then full, which is what a filler is for."""
    import errno
    import os

    def free() -> int:
        return os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize

    with open(folder / "filler", "ab", buffering=0) as filler:
        while free() > leave:
            try:
                filler.write(b"\0" * min(free() - leave, 1 << 16))
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                return


def journal_copy(finished_study: Path, tmp_path: Path) -> Path:
    """A copy of a real finished study's results folder; returns its journal."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(finished_study, results)
    return results / "small" / JOURNAL
