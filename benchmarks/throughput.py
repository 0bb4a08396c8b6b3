"""How fast the harness trains, against plain `model.fit` and KerasTuner, and against the machine.

    .venv/bin/python benchmarks/throughput.py [--epochs 3] [--rounds 2] [--fixed-trials 5] [--skip-search]

Prints, from one run on one machine, and writes to results/benchmarks/throughput.md:
- the roofline: TensorFlow's float32 matrix-multiply rate here (chained square matmuls, best size),
  the better of its two CPU kernel sets, Eigen's and oneDNN's (each asked in its own process);
- for the S2 MLP (784-512-256-128-10) at batch 128 and 512 and a small CNN (3x3 convolutions of 32
  and 64 filters, each with 2x2 max pooling, Dense 128) at batch 128: training samples per second
  of the harness's compiled loop (`search.train.CompiledLoop`), of plain `model.fit` on NumPy arrays
  as the tutorials call it (`x / 255.0`, a float64 array; Adam; accuracy metric; validation data),
  and of KerasTuner running the same model for one trial (RandomSearch, `tuner.search`); each is the
  median over `--rounds` x `--epochs` epochs, the trainers taking turns round by round, each in a
  fresh process, each round after a warm-up epoch, training time only (validation excluded for
  all); the ratios. The harness runs with the kernels a lone worker on all cores picks for that
  model (`search.runtime.use_onednn`); `model.fit` and KerasTuner run as a tutorial runs them, with
  TensorFlow's default (which on a CPU without AVX-512 is Eigen's). Where those differ, `model.fit`
  runs again with the harness's kernels, so that only the loop differs (in float32: where the harness
  trains in bfloat16, `search.runtime.training_precision`, that column also differs in precision, and
  the bfloat16 matmul rate is printed beside the float32 roofline). And the harness as `run`
  deploys it on this machine: `search.workers.default_count()` processes at once (2 on 2 cores),
  each on its share of the cores and the kernels a worker on that many threads picks, their samples
  per second added up (the machine's training rate during a search), against the same `model.fit`;
- the harness's FLOP rate as a share of the roofline, with FLOPs per training sample counted from
  the model's layers (forward, weight gradients, input gradients except the first layer's); and for
  the MLP, the share its training matmuls alone reach, back to back at the same batch size: the
  most the harness's step could reach if everything else in it cost nothing;
- the fixed cost of one trial: a real trial through Optuna and the journal storage (build, trace,
  epochs, test evaluation, keeping the weights) minus its epochs at the steady epoch time, the
  median over `--fixed-trials` such trials in a row (a new worker's first trial also pays the
  process's one-off set-up, which this leaves out: the search's wall time below includes it);
- the wall time and best test accuracy of `python -m search run spaces/mlp.py --trials 50`
  (default settings; `--skip-search` leaves it out), and whether a searched trial or one of the
  space's baselines reached it (then also the best searched trial's).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flags import positive  # noqa: E402

from search.study.workers import default_count  # noqa: E402
from search.training.runtime import ONEDNN, cores, start_tensorflow, training_precision, use_onednn  # noqa: E402

# This process times the MLP parts (fixed cost, matmuls alone) with the kernels a worker for an
# MLP space uses; a child process started for something else gets its kernels (TF_ENABLE_ONEDNN_OPTS)
# and its thread count (THREADS) from the parent's environment: both must be set before TensorFlow starts.
THREADS = "THROUGHPUT_THREADS"
start_tensorflow(models={"mlp"}, threads=int(os.environ[THREADS]) if THREADS in os.environ else None)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from search.space import schema  # noqa: E402
from search.training import datasets, models, train  # noqa: E402
from search.training.optimizers import make_optimizer  # noqa: E402

MLP = {"model": "mlp", "layers": [{"units": 512}, {"units": 256}, {"units": 128}], "learning_rate": 1e-3}
CNN = {"model": "cnn", "conv_blocks": [{"filters": 32, "kernel_size": 3, "pooling": "max"},
                                       {"filters": 64, "kernel_size": 3, "pooling": "max"}],
       "layers": [{"units": 128}], "learning_rate": 1e-3}
WORKLOADS = [("S2 MLP 784-512-256-128-10", MLP, 128), ("S2 MLP 784-512-256-128-10", MLP, 512),
             ("CNN conv32-conv64-dense128", CNN, 128)]


def roofline(dtype: str = "float32") -> tuple[float, int]:
    """Best GFLOP/s of chained n x n matmuls in `dtype` (chained, so no two are the same and none
    can be folded away), and the n it was reached at, with this process's kernels (the benchmark
    asks again in a child process with the other kernels, and keeps the better)."""
    best = (0.0, 0)
    for n in (512, 1024, 2048):
        a = tf.cast(tf.random.normal([n, n]) / n**0.5, dtype)

        @tf.function
        def chain(c: Any, a: Any = a) -> Any:
            for _ in range(8):
                c = tf.matmul(c, a)
            return c

        chain(a).numpy()
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            chain(a).numpy()
            rates.append(2 * n**3 * 8 / (time.perf_counter() - started) / 1e9)
        best = max(best, (statistics.median(rates), n))
    return best


def training_flops(model: keras.Model) -> float:
    """FLOPs to train on one sample: 2 per multiply-add forward, as many again for the weight
    gradients, and as many again for the input gradients of every weight layer but the first."""
    total, first = 0.0, True
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            forward = 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1], layer.output.shape[2]
            forward = 2.0 * height * width * int(np.prod(layer.kernel.shape))
        else:
            continue
        total += forward * (2 if first else 3)
        first = False
    return total


def matmuls_alone(model: keras.Model, batch_size: int, steps: int = 100, rounds: int = 5) -> float:
    """GFLOP/s of an MLP's own training matmuls and nothing else: for each Dense kernel (k x n) at
    `batch_size`, the forward (b x k)(k x n), the weight gradient (k x b)(b x n) and, for all but
    the first, the input gradient (b x n)(n x k), back to back in one traced loop. What the
    harness's step could reach if its other ops (biases, activations, loss, Adam) cost nothing."""
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    weights = [tf.random.normal(kernel.shape) * 0.05 for kernel in kernels]
    x = tf.random.normal([batch_size, kernels[0].shape[0]])
    upstream = tf.random.normal([batch_size, kernels[-1].shape[1]])

    @tf.function
    def run(count: Any) -> Any:
        total = tf.constant(0.0)
        for _ in tf.range(count):
            inputs = [x]
            for w in weights:
                inputs.append(tf.matmul(inputs[-1], w))
            grad = upstream
            for index in reversed(range(len(weights))):
                total += tf.matmul(inputs[index], grad, transpose_a=True)[0, 0]
                if index:
                    grad = tf.matmul(grad, weights[index], transpose_b=True)
        return total

    flops = training_flops(model) * batch_size * steps
    run(tf.constant(2)).numpy()
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        run(tf.constant(steps)).numpy()
        rates.append(flops / (time.perf_counter() - started) / 1e9)
    return statistics.median(rates)


def harness_rate(config: dict[str, Any], dataset: datasets.Dataset, images: int, epochs: int) -> list[float]:
    """Samples per second of the compiled loop, per epoch of `images` training images."""
    config = schema.resolve(config)
    train.reset(0)
    model = train.training_model(config, training_precision())  # what a trial here trains
    loop = train.CompiledLoop(model, make_optimizer(config), config, dataset)
    batch = config["batch_size"] * train.BATCHES_PER_CALL
    rates = []
    for _ in range(epochs + 1):  # the first is warm-up
        order = np.random.permutation(len(dataset.train_images)).astype(np.int32)[:images]
        started = time.perf_counter()
        for first in range(0, images, batch):
            float(loop.train(order[first:first + batch]))
        rates.append(images / (time.perf_counter() - started))
    return rates[1:]


CLOCKS: dict[str, list[float]] = {}  # KerasTuner deep-copies callbacks: the times live out here


class TrainClock(keras.callbacks.Callback):
    """Training time of each epoch: from its start to the start of its validation pass."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        CLOCKS[name] = []
        self.started: float | None = None

    @property
    def seconds(self) -> list[float]:
        return CLOCKS[self.name]

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.started is not None:  # the first validation pass of the epoch
            self.seconds.append(time.perf_counter() - self.started)
            self.started = None


def tutorial_model(config: dict[str, Any]) -> keras.Model:
    """The same layers as the harness's model, written the way the tutorials write them: float
    input already scaled, Sequential, Adam with its defaults."""
    stack: list[Any] = [keras.Input((28, 28))]
    if config["model"] == "cnn":
        stack.append(keras.layers.Reshape((28, 28, 1)))
        for block in config["conv_blocks"]:
            stack += [keras.layers.Conv2D(block["filters"], block["kernel_size"], padding="same", activation="relu"),
                      keras.layers.MaxPooling2D(2)]
    stack.append(keras.layers.Flatten())
    stack += [keras.layers.Dense(layer["units"], activation="relu") for layer in config["layers"]]
    stack.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_rate(config: dict[str, Any], dataset: datasets.Dataset, images: int, epochs: int,
             batch_size: int) -> list[float]:
    """Samples per second of plain model.fit, as the tutorials call it."""
    x = dataset.train_images[:images] / 255.0  # float64, as `x_train / 255.0` gives
    y = dataset.train_labels[:images]
    clock = TrainClock("fit")
    keras.utils.set_random_seed(0)
    tutorial_model(config).fit(x, y, batch_size=batch_size, epochs=epochs + 1, verbose=0, callbacks=[clock],
                               validation_data=(dataset.val_images / 255.0, dataset.val_labels))
    return [images / seconds for seconds in clock.seconds[1:]]


def keras_tuner_rate(config: dict[str, Any], dataset: datasets.Dataset, images: int, epochs: int,
                     batch_size: int, folder: Path) -> list[float]:
    """Samples per second of one KerasTuner trial training the same tutorial-style model."""
    import keras_tuner

    x = dataset.train_images[:images] / 255.0
    y = dataset.train_labels[:images]
    clock = TrainClock("keras-tuner")
    keras.utils.set_random_seed(0)

    class RandomSearch(keras_tuner.RandomSearch):  # type: ignore[misc]
        def _configure_tensorboard_dir(self, *args: Any, **kwargs: Any) -> None:
            pass  # stock KerasTuner imports tensorboard here for every trial; nothing uses it

    tuner = RandomSearch(lambda hp: tutorial_model(config), objective="val_accuracy", max_trials=1,
                         directory=str(folder), project_name="throughput", overwrite=True)
    tuner.search(x, y, batch_size=batch_size, epochs=epochs + 1, verbose=0, callbacks=[clock],
                 validation_data=(dataset.val_images / 255.0, dataset.val_labels))
    return [images / seconds for seconds in clock.seconds[1:]]


def tensorflow_default_onednn() -> bool:
    """Whether TensorFlow, left to its defaults, uses oneDNN on this machine (asked in a fresh
    process, since this one has set TF_ENABLE_ONEDNN_OPTS before importing it)."""
    probe = "from tensorflow.python.util import _pywrap_util_port as p; print(p.IsMklEnabled())"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1] == "True"


def in_child(trainer: str, workload: int, images: int, epochs: int, onednn: bool) -> list[float]:
    """`trainer` ("harness", "fit", "tuner" or "roofline") on `WORKLOADS[workload]` in a fresh
    process whose TensorFlow uses oneDNN's kernels or not as `onednn` says (the tutorials' trainers
    with TensorFlow's default, `tensorflow_default_onednn`; the harness with what a worker picks for
    that model, `search.runtime.use_onednn`), on TensorFlow's default threads: its per-epoch
    samples per second (the roofline: its rate and size)."""
    return _children(trainer, workload, images, epochs, onednn, processes=1)[0]


def at_once(workload: int, images: int, epochs: int, onednn: bool, processes: int) -> float:
    """The harness on `WORKLOADS[workload]` in `processes` fresh processes training at the same
    time, each on `cores() // processes` TensorFlow threads (one: TensorFlow's default), as `run`'s
    local workers do: the sum of their median samples per second, which is the machine's training
    rate during a search (one process: its median)."""
    return sum(statistics.median(rates) for rates in
               _children("harness", workload, images, epochs, onednn, processes))


def _children(trainer: str, workload: int, images: int, epochs: int, onednn: bool,
              processes: int) -> list[list[float]]:
    """Start `processes` children at once (threads capped when more than one) and collect each
    one's per-epoch figures."""
    command = [sys.executable, __file__, "--child", trainer, "--workload", str(workload), "--child-images",
               str(images), "--epochs", str(epochs)]
    env = {**os.environ, ONEDNN: "1" if onednn else "0"}
    env.pop(THREADS, None)
    if processes > 1:
        env[THREADS] = str(max(1, cores() // processes))
    running = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    results = []
    for process in running:
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"{' '.join(command[1:])} failed:\n{err[-2000:]}")
        results.append([float(rate) for rate in out.strip().splitlines()[-1].split()])
    return results


def child(trainer: str, workload: int, images: int, epochs: int) -> None:
    """The child side of `in_child`: prints the per-epoch rates (the roofline: rate and size) on one line."""
    _, base, batch_size = WORKLOADS[workload]
    if trainer == "roofline":  # no data needed
        print(" ".join(f"{value:.1f}" for value in roofline()))
        return
    dataset = datasets.load("mnist")
    with tempfile.TemporaryDirectory() as tmp:
        if trainer == "harness":
            rates = harness_rate({**base, "batch_size": batch_size}, dataset, images, epochs)
        elif trainer == "fit":
            rates = fit_rate({**base, "batch_size": batch_size}, dataset, images, epochs, batch_size)
        else:
            rates = keras_tuner_rate({**base, "batch_size": batch_size}, dataset, images, epochs, batch_size, Path(tmp))
    print(" ".join(f"{rate:.1f}" for rate in rates))


def fixed_cost(dataset: datasets.Dataset, folder: Path, trials: int, epochs: int = 4) -> dict[str, float]:
    """Real trials of the S2 MLP at batch 128 through Optuna and the journal storage, one after
    another in one study. A trial's fixed cost is what it spends beyond its epochs at the steady
    epoch time: its first epoch (timed from the trial's start, so with the build and the tracing)
    minus a steady epoch (the median of its later ones), plus everything after its last epoch
    (test evaluation, keeping the weights, Optuna's bookkeeping). That is its wall time minus `epochs`
    steady epochs, but without the later epochs' own noise. Medians over `trials` trials, as one
    trial's figure moves with the machine's noise by more than the figure itself."""
    from search.space import Space
    from search.study import lifecycle
    from search.study.objective import Objective
    from search.study.storage import default_location, open_storage

    config = {**MLP, "batch_size": 128, "epochs": epochs}
    space = Space(source="fixed.py", space=config, baselines={}, doc="")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="fixed", direction="maximize", sampler=optuna.samplers.RandomSampler(0),
                                storage=open_storage(default_location(folder, "fixed")))
    epoch_times: dict[int, list[float]] = {}
    walls: list[float] = []
    marks = {"start": 0.0, "trial": 0.0}

    def on_epoch(number: int, epoch: int, total: int, value: float) -> None:
        now = time.perf_counter()
        epoch_times.setdefault(number, []).append(now - marks["start"])
        marks["start"] = now

    def on_trial(study: Any, frozen: Any) -> None:
        now = time.perf_counter()
        walls.append(now - marks["trial"])
        marks["trial"] = marks["start"] = now

    objective = Objective(space, lifecycle.Context(dataset, study_dir=folder / "fixed", keep=1, on_epoch=on_epoch),
                          epochs=None, base_seed=0)
    marks["trial"] = marks["start"] = time.perf_counter()
    study.optimize(objective, n_trials=trials, callbacks=[on_trial])
    rows = []
    for number, wall in enumerate(walls):
        times = epoch_times[number]
        steady = statistics.median(times[1:])
        rows.append({"wall": wall, "steady_epoch": steady, "first_epoch": times[0],
                     "fixed": wall - sum(times[1:]) - steady})
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    median["low"], median["high"] = min(row["fixed"] for row in rows), max(row["fixed"] for row in rows)
    return median


def fifty_trials(out: Path) -> dict[str, Any]:
    """`python -m search run spaces/mlp.py --trials 50` into a fresh `out/mlp-50/` (its output in
    `out/mlp-50.log`), under GNU time when it is there for the peak resident memory."""
    import io
    import shutil

    import pandas as pd

    results = out / "mlp-50"
    shutil.rmtree(results, ignore_errors=True)
    command = [sys.executable, "-m", "search", "run", "spaces/mlp.py", "--trials", "50", "--results", str(results)]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    finished = subprocess.run(timer + command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (out / "mlp-50.log").write_text(finished.stdout + finished.stderr)
    finished.check_returncode()
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", finished.stderr)
    board = subprocess.run([sys.executable, "-m", "search", "leaderboard", "mlp", "--results", str(results),
                            "--format", "csv"], check=True, cwd=ROOT, capture_output=True, text=True).stdout
    frame = pd.read_csv(io.StringIO(board))
    return {"wall": wall, **best_of(frame),
            "complete": int((frame["state"] == "complete").sum()), "pruned": int((frame["state"] == "pruned").sum()),
            "peak_gb": int(peak.group(1)) / 1e6 if peak else float("nan")}


def best_of(frame: Any) -> dict[str, Any]:
    """The leaderboard's best test accuracy, its trial and baseline label (None: a searched trial),
    and the best searched trial's test accuracy: a search whose best is a baseline did not beat it."""
    best = frame.loc[frame["test_accuracy"].idxmax()]
    return {"best_test": float(best["test_accuracy"]), "best_trial": int(best["trial"]),
            "best_baseline": best["baseline"] if isinstance(best["baseline"], str) else None,
            "best_searched": float(frame.loc[frame["baseline"].isna(), "test_accuracy"].max())}


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{cpu}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, Keras {keras.__version__}"
            + (f", GPU: {len(gpus)}" if gpus else ", no GPU"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive, default=3, help="measured epochs per trainer and round (+1 warm-up)")
    parser.add_argument("--rounds", type=positive, default=2, help="rounds of harness, model.fit, KerasTuner in turn")
    parser.add_argument("--mlp-images", type=positive, default=55_000, help="training images per MLP epoch")
    parser.add_argument("--cnn-images", type=positive, default=16_000, help="training images per CNN epoch")
    parser.add_argument("--fixed-trials", type=positive, default=5, help="trials the fixed cost is the median of")
    parser.add_argument("--skip-search", action="store_true", help="leave out the 50-trial search")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    parser.add_argument("--child", choices=["harness", "fit", "tuner", "roofline"], help=argparse.SUPPRESS)
    parser.add_argument("--workload", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-images", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workload, args.child_images, args.epochs)
        return
    default_onednn = tensorflow_default_onednn()
    here_onednn = os.environ[ONEDNN] == "1"
    dataset = datasets.load("mnist")
    lines = [f"Machine: {machine()}", ""]
    rooflines = {here_onednn: roofline()}
    rate, n = in_child("roofline", 0, 1, 1, not here_onednn)
    rooflines[not here_onednn] = (rate, int(n))
    best = max(rooflines, key=lambda onednn: rooflines[onednn][0])
    peak, size = rooflines[best]
    kernels = {True: "oneDNN", False: "Eigen"}
    precision = training_precision()
    here_name = kernels[here_onednn]
    bf16_peak, bf16_size = roofline("bfloat16") if precision == "bfloat16" else (0.0, 0)
    lines += [f"Roofline: float32 matmul {peak:.1f} GFLOP/s (chained {size}x{size} matmuls, {kernels[best]}; "
              f"{kernels[not best]}: {rooflines[not best][0]:.1f} GFLOP/s at {rooflines[not best][1]})",
              f"Kernels: the harness, one process on all {cores()} cores, uses "
              f"{kernels[use_onednn({'mlp'}, cores(), precision)]} for the MLP and "
              f"{kernels[use_onednn({'cnn'}, cores(), precision)]} "
              f"for the CNN; a worker on one thread beside others uses {kernels[use_onednn({'mlp'}, 1, precision)]} "
              f"(search.runtime.use_onednn); model.fit and KerasTuner as the tutorials run them use TensorFlow's "
              f"default, which here is {kernels[default_onednn]}",
              f"Precision: the harness trains in {precision} here (search.runtime.training_precision); model.fit "
              f"and KerasTuner in float32, as the tutorials do. Shares of the roofline are of the float32 roofline"
              + ("" if precision == "float32" else
                 f" (bfloat16 matmul here: {bf16_peak:.1f} GFLOP/s at {bf16_size}, {here_name})"), ""]
    print(*lines, sep="\n", flush=True)
    workers = default_count()
    worker_threads = max(1, cores() // workers)
    deployed = f"{workers} workers x {worker_threads} thread{'s' if worker_threads > 1 else ''}"
    table = ["| model | batch | harness samples/s | model.fit samples/s | KerasTuner samples/s | harness/fit | "
             "harness/KerasTuner | model.fit, harness's kernels, samples/s | harness/that fit | MFLOP/sample | "
             f"harness GFLOP/s | of roofline | its matmuls alone, of roofline | harness as `run` deploys it "
             f"({deployed}, summed) samples/s | that/fit | that, of roofline |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, base, batch_size) in enumerate(WORKLOADS):
            config = {**base, "batch_size": batch_size}
            images = args.cnn_images if base["model"] == "cnn" else args.mlp_images
            harness_onednn = use_onednn({str(base["model"])}, cores(), precision)
            worker_onednn = use_onednn({str(base["model"])}, worker_threads, precision)
            rates: dict[str, list[float]] = {"harness": [], "fit": [], "tuner": [], "fit_same": [], "workers": []}
            for _ in range(args.rounds):  # interleaved, so a slow spell of the machine hits all of them
                rates["harness"] += in_child("harness", index, images, args.epochs, harness_onednn)
                rates["fit"] += in_child("fit", index, images, args.epochs, default_onednn)
                rates["tuner"] += in_child("tuner", index, images, args.epochs, default_onednn)
                if harness_onednn != default_onednn:  # else the fit column already is that fit
                    rates["fit_same"] += in_child("fit", index, images, args.epochs, harness_onednn)
                if workers > 1:
                    rates["workers"].append(at_once(index, images, args.epochs, worker_onednn, workers))
            rates["fit_same"] = rates["fit_same"] or rates["fit"]
            rates["workers"] = rates["workers"] or rates["harness"]
            harness, plain, tuner, same, spread = (statistics.median(rates[key])
                                                   for key in ("harness", "fit", "tuner", "fit_same", "workers"))
            model = models.build(config)
            flops = training_flops(model)
            achieved = harness * flops / 1e9
            alone = (f"{matmuls_alone(model, batch_size) / peak:.0%}"
                     if base["model"] == "mlp" and harness_onednn == here_onednn and precision == "float32" else "-")
            row = (f"| {name} | {batch_size} | {harness:,.0f} | {plain:,.0f} | {tuner:,.0f} | {harness / plain:.2f}x | "
                   f"{harness / tuner:.2f}x | {same:,.0f} | {harness / same:.2f}x | {flops / 1e6:.2f} | "
                   f"{achieved:.1f} | {achieved / peak:.0%} | {alone} | {spread:,.0f} | {spread / plain:.2f}x | "
                   f"{spread * flops / 1e9 / peak:.0%} |")
            table.append(row)
            print(row, flush=True)
        cost = fixed_cost(dataset, Path(tmp), args.fixed_trials)
    lines += table + ["", f"Fixed cost of one trial (S2 MLP, batch 128, 4 epochs on 55,000 images; median of "
                          f"{args.fixed_trials} trials): {cost['fixed']:.2f} s (range {cost['low']:.2f}-"
                          f"{cost['high']:.2f} s; trial wall {cost['wall']:.2f} s, steady epoch "
                          f"{cost['steady_epoch']:.2f} s, first epoch {cost['first_epoch']:.2f} s)"]
    print(lines[-1], flush=True)
    if not args.skip_search:
        search = fifty_trials(args.out)
        who = (f"the {search['best_baseline']} baseline; best searched trial {search['best_searched']:.2%}"
               if search["best_baseline"] else "a searched trial")
        lines.append(f"`python -m search run spaces/mlp.py --trials 50`: {search['wall'] / 60:.1f} min wall, best test "
                     f"accuracy {search['best_test']:.2%} (trial {search['best_trial']}, {who}; {search['complete']} "
                     f"complete, {search['pruned']} pruned; peak memory of one process {search['peak_gb']:.2f} GB)")
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.md").write_text("\n".join(lines) + "\n")
    print(f"written: {args.out / 'throughput.md'}")


if __name__ == "__main__":
    main()
