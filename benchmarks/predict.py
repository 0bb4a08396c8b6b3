"""End-to-end wall time of `predict` for 1 and for 300 PNGs: an export folder (its model.tflite, run
by LiteRT) against the same model's model.keras (run by Keras, after TensorFlow's start-up).

    .venv/bin/python benchmarks/predict.py [--repeats 5] [--images 300] [--work DIR]

The first run trains a small real study (one CNN trial, 16-32 filters and 64 units, 2 epochs on
10,000 images) and exports it, and writes --images real MNIST test digits as PNGs (`write_samples`),
all into --work (default: search-predict-benchmark in the temp folder); later runs reuse them. Each
timing is one fresh `python -m search predict ... --json` process, from start to exit; the four
cases take turns, so that a slow spell of the machine falls on all of them. Prints the machine,
then per case the median, min and max seconds and the accuracy of the digits it printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from flags import positive  # noqa: E402

SPACE = '''
from search.space import Float
SPACE = {"model": "cnn", "conv_blocks": [{"filters": 16}, {"filters": 32}], "layers": [{"units": 64}],
         "learning_rate": Float(1e-3, 3e-3, log=True), "batch_size": 128, "epochs": 2}
'''
STUDY = "predict-benchmark"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m search ARGS` in a fresh process, as a user runs it; its output captured."""
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def exported_model(work: Path) -> Path:
    """An export folder of a small real study's best trial: made once, then reused."""
    folder = work / "export"
    if (folder / "model.tflite").is_file() and (folder / "model.keras").is_file():
        return folder
    space = work / "space.py"
    space.write_text(SPACE)
    results = str(work / "results")
    for args in (["run", str(space), "--study", STUDY, "--trials", "1", "--train-size", "10000", "--seed", "0",
                  "--workers", "1", "--keep-top", "1", "--results", results],
                 ["export", STUDY, "--results", results, "--out", str(folder)]):
        done = cli(*args)
        if done.returncode != 0:
            sys.exit(f"python -m search {' '.join(args)} failed:\n{done.stderr}")
    return folder


def sample_images(work: Path, n: int) -> tuple[list[Path], dict[str, int]]:
    """`n` real MNIST test digits as PNGs (made once per `n`) and their true labels by file name."""
    from search.serving.predict import write_samples

    folder = work / f"digits-{n}"
    labels_file = folder / "labels.json"
    if not labels_file.is_file():
        write_samples(folder, n=n, seed=0)
    labels = {name: entry["label"] for name, entry in json.loads(labels_file.read_text()).items()}
    return sorted(folder / name for name in labels), labels


def timed_predict(model: Path, images: list[Path], labels: dict[str, int]) -> tuple[float, float]:
    """Wall seconds of one `predict` process, and the share of its digits that match the labels."""
    started = time.perf_counter()
    done = cli("predict", str(model), *map(str, images), "--json")
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"predict {model} failed ({done.returncode}):\n{done.stderr}")
    rows = json.loads(done.stdout)
    correct = sum(row["digit"] == labels[Path(row["path"]).name] for row in rows)
    return seconds, correct / len(rows)


def machine() -> str:
    """The CPU's model name as lscpu reports it, and the cores this process may use."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name:")]
    except (OSError, subprocess.CalledProcessError):
        names = []
    return f"{names[0] if names else 'unknown CPU'}, {len(os.sched_getaffinity(0))} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive, default=5, help="timed processes per case (5)")
    parser.add_argument("--images", type=positive, default=300, help="PNGs in the large case (300)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "search-predict-benchmark",
                        help="folder for the study, its export and the PNGs; reused when present")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    export = exported_model(args.work)
    images, labels = sample_images(args.work, args.images)
    cases = {(kind, len(batch)): (model, batch)
             for kind, model in (("TFLite", export), ("Keras", export / "model.keras"))
             for batch in (images[:1], images)}
    seconds: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    accuracy: dict[tuple[str, int], float] = {}
    timed_predict(export, images[:1], labels)  # one untimed run: Python's bytecode caches, the page cache
    for _ in range(args.repeats):
        for case, (model, batch) in cases.items():
            wall, accuracy[case] = timed_predict(model, batch, labels)
            seconds[case].append(wall)
    print(f"machine: {machine()}; {args.repeats} runs per case; model: {export}")
    print("command: python -m search predict MODEL IMAGE... --json (end to end, a fresh process each run)")
    print("| model | images | median s | min s | max s | accuracy |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (kind, n), walls in seconds.items():
        model = "export folder (model.tflite, LiteRT)" if kind == "TFLite" else "model.keras (Keras)"
        print(f"| {model} | {n} | {statistics.median(walls):.2f} | {min(walls):.2f} | {max(walls):.2f} "
              f"| {accuracy[(kind, n)]:.1%} |")
    for n in (1, len(images)):
        ratio = statistics.median(seconds[("Keras", n)]) / statistics.median(seconds[("TFLite", n)])
        print(f"{n} image{'s' if n > 1 else ''}: the export folder is {ratio:.0f}x faster than model.keras")


if __name__ == "__main__":
    main()
