"""The report page of a finished study: the time `search report` takes, the page's size, and the time headless
Chromium takes to open it (navigation start to the end of the `load` event, when every figure is drawn).

    .venv/bin/python benchmarks/report_page.py results/mlp [--repeats 5] [--work DIR]

Reads only the study's journal: it copies `journal.log` (and `storage.txt`) into --work (default:
search-report-benchmark in the temp folder) and runs `python -m search report` on the copy, so a running
search is not disturbed and no kept weights are rerun (the confusion matrix and misclassified digits are
left out). Each page load is a fresh browser with no network (http and https blocked). Prints the
trials, the page's size, the report's seconds, then the median, min and max load time and any
JavaScript error.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from flags import positive  # noqa: E402
from helpers import headless_chromium  # noqa: E402

LOAD_MS = "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"


def load_once(page: Path, profile: Path) -> tuple[float, list[str]]:
    """Milliseconds from navigation start to the end of the load event, and the errors the page raised,
    in the tests' offline headless Chromium."""
    with headless_chromium(profile) as driver:
        driver.get(page.as_uri())
        errors = list(driver.execute_script("return window.__errors"))
        errors += [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        return float(driver.execute_script(LOAD_MS)), errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study_dir", type=Path, help="a results/<study> folder holding journal.log")
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "search-report-benchmark")
    args = parser.parse_args()
    study = args.study_dir.name
    copy = args.work / "results" / study
    copy.mkdir(parents=True, exist_ok=True)
    for name in ("journal.log", "storage.txt"):  # the storage, and the file that says the study is in it
        if (args.study_dir / name).exists():
            shutil.copy(args.study_dir / name, copy / name)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "search", "report", study, "--results", str(copy.parent)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    page = copy / "report.html"
    rows = page.read_text().split('id="leaderboard"')[1].split("<tbody>")[1].count("<tr>")
    print(f"study {study}: {rows} finished trials; report.html {page.stat().st_size / 1e6:.2f} MB, "
          f"written in {seconds:.1f} s (python -m search report, start to exit)")
    loads = []
    for repeat in range(args.repeats):
        milliseconds, errors = load_once(page, args.work / f"profile-{repeat}")
        loads.append(milliseconds)
        if errors:
            print(f"load {repeat + 1}: JavaScript errors: {errors}")
    print(f"headless Chromium, navigation start to load event end over {len(loads)} loads: median "
          f"{statistics.median(loads):.0f} ms (min {min(loads):.0f}, max {max(loads):.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
