"""The README's pictures, made again: a small real search, its report page and TensorBoard's HParams table.

    .venv/bin/python scripts/screenshots.py [--work DIR] [--out docs/images]

Runs a 12-trial search (3 epochs on 2,000 MNIST images; the median pruner stops some trials)
with `--tensorboard`, writes its report, starts `tensorboard --logdir` on a free loopback port, and
takes two screenshots in headless Chromium (Debian's `chromium` and `chromium-driver`, through
Selenium, as the report's test does): `report.png`, the top of the report page, and
`tensorboard-hparams.png`, the HParams tab's table view; each as a palette PNG, so that it stays
small. A few minutes on 2 cores; the search, the page and the event files stay in --work (default:
search-screenshots in the temp folder) to look at.
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Each picture: the page laid out in a window of this many CSS pixels, drawn at a scale: the report's column is
# 1,100 pixels wide; TensorBoard's table needs more for its metric columns, and 0.75 keeps its text readable.
REPORT_WINDOW, TENSORBOARD_WINDOW = (1180, 900, 1.0), (1880, 1040, 0.75)
# Two searched widths, two depths and learning rates far apart: some trials learn, some barely move and
# are pruned; a baseline beside them.
SPACE = """from search.space import Choice, Float, Int, Repeat

SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(16, 128, log=True)}),
    "dropout": Float(0.0, 0.3),
    "learning_rate": Choice([3e-3, 1e-5]),
    "batch_size": 128,
}
BASELINES = {"two 32s": {"model": "mlp", "layers": [{"units": 32}, {"units": 32}], "learning_rate": 3e-3,
                         "batch_size": 128}}
"""
# Text anywhere in the page, inside TensorBoard's shadow DOMs too.
DEEP_TEXT = """const seen = []; const walk = node => { if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.children || []) walk(child); if (node.nodeType === 1 && !node.children.length)
  seen.push(node.textContent); }; walk(document.documentElement); return seen.join(' ');"""


def browser(profile: Path, window: tuple[int, int, float]):  # a selenium WebDriver (it ships no type hints)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    width, height, scale = window
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                   "deviceScaleFactor": scale, "mobile": False})
    return driver


def save(driver, path: Path) -> None:
    """What the page shows, as a palette PNG (a screenshot has few colours: a fraction of the bytes)."""
    from PIL import Image

    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({image.width}x{image.height}, {path.stat().st_size / 1000:.0f} KB)")


def search(work: Path) -> tuple[Path, Path]:
    """The study's results folder and its TensorBoard folder, after a fresh small search and its report."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    space, results, board = work / "pictured.py", work / "results", work / "tensorboard"
    space.write_text(SPACE)
    python = [sys.executable, "-m", "search"]
    subprocess.run([*python, "run", str(space), "--trials", "12", "--epochs", "3", "--train-size", "2000",
                    "--seed", "0", "--workers", "1", "--results", str(results), "--tensorboard", str(board)],
                   cwd=ROOT, check=True)
    subprocess.run([*python, "report", "pictured", "--results", str(results)], cwd=ROOT, check=True)
    return results / "pictured", board


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tensorboard(board: Path, work: Path, out: Path) -> None:
    """Start TensorBoard on the folder, open its HParams tab and take the table view."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(board), "--host", "127.0.0.1",
               "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(120):  # TensorBoard takes a few seconds to start and read the folder
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        driver = browser(work / "profile-tensorboard", TENSORBOARD_WINDOW)
        driver.get(url + "#hparams")
        for _ in range(120):  # the table is drawn once the plugin has read every trial's session
            if "00011 " in driver.execute_script(DEEP_TEXT):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("TensorBoard's HParams tab never listed trial 11")
        time.sleep(1)
        save(driver, out / "tensorboard-hparams.png")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


def report(study_dir: Path, work: Path, out: Path) -> None:
    driver = browser(work / "profile-report", REPORT_WINDOW)
    try:
        driver.get((study_dir / "report.html").as_uri())
        save(driver, out / "report.png")
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "search-screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    study_dir, board = search(args.work)
    report(study_dir, args.work, args.out)
    tensorboard(board, args.work, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
