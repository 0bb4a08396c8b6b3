"""The five classic TensorFlow MNIST tutorials (S1-S5) as concrete configs, and a run of all of them.

One source of truth for the baselines: the space files' `BASELINES` take their configs from `SEEDS`
(so a search starts from the tutorial it should beat, labelled on its leaderboard), and
`run_baselines` trains each once on the full data with the same machinery as a trial
(`models.build`, `train.fit`, `train.evaluate`) and sets our test accuracy beside the published one.
Each config reproduces its tutorial as written, oddities included; the comments say where the text
and the code disagree and which reading the config follows. This module imports no TensorFlow
until something trains, so a space file can import it and still load instantly.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Seed:
    """One tutorial: its leaderboard label, published test accuracy and our config of it."""

    label: str
    published: float
    config: dict[str, Any]


S4_CONV = [  # conv 3x3 SAME, then 3x3 max pooling with stride 2 (VALID): 28 -> 13 -> 6, the
    # stated 13x13x12 and 6x6x16. The text says stride 1, which would keep 26x26: the shapes win.
    {"filters": 12, "kernel_size": 3, "pooling": "max", "pool_size": 3, "pool_stride": 2},
    {"filters": 16, "kernel_size": 3, "pooling": "max", "pool_size": 3, "pool_stride": 2},
]
S4_PLAIN = {
    "model": "cnn", "conv_blocks": S4_CONV,
    # Two SELU layers each about half its input: 6*6*16 = 576 -> 288 -> 144. Convolutions: ReLU (the
    # tutorial names SELU only for the dense layers). Adam at its default rate; batch 100 (not given).
    "layers": [{"units": 288}, {"units": 144}], "conv_activation": "relu", "activation": "selu",
    "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 100, "epochs": 19,
}

SEEDS: dict[str, Seed] = {
    "S1": Seed("S1 softmax regression", 0.92, {
        "model": "softmax", "init": "zeros", "bias_init": 0.0,  # weights and biases start at zero
        "optimizer": "sgd", "learning_rate": 0.5, "batch_size": 100, "steps": 1000,
    }),
    "S2": Seed("S2 DigitalOcean 512-256-128 (no activations)", 0.9206, {
        # As its code runs: hidden layers without activation, so the network is linear; the dropout
        # it defines feeds nothing (the output reads the layer before it), so there is none here.
        "model": "mlp", "layers": [{"units": 512}, {"units": 256}, {"units": 128}], "activation": "linear",
        "init": "truncated_normal", "init_stddev": 0.1, "bias_init": 0.1,
        "optimizer": "adam", "learning_rate": 1e-4, "batch_size": 128, "steps": 1000,
    }),
    "S3": Seed("S3 784-500 EMA+L2+decay", 0.985, {
        "model": "mlp", "layers": [{"units": 500}], "activation": "relu",
        "init": "truncated_normal", "init_stddev": 0.1, "bias_init": 0.0,
        # TF's l2_regularizer(1e-4) adds 1e-4 * sum(w**2) / 2; Keras's L2(l) adds l * sum(w**2).
        "l2": 5e-5,
        "optimizer": "sgd", "learning_rate": 0.8,
        "schedule": "exponential", "decay_rate": 0.99, "decay_steps": 550, "staircase": True,
        "ema": 0.99, "batch_size": 100, "steps": 30_000,
    }),
    "S4": Seed("S4 LeNet-style CNN", 0.9907, S4_PLAIN),
    "S4-aug": Seed("S4 CNN+BN+dropout+shift+hflip (flipping digits is dubious)", 0.995, {
        **S4_PLAIN,
        # Dropout rate not given: 0.5 after each dense layer. Batch norm after every conv and dense layer.
        "batch_norm": True, "batch_norm_momentum": 0.9, "dropout": 0.5,
        "augment": "shift_flip", "shift_pixels": 1, "epochs": 29,
    }),
    "S5": Seed("S5 Keras 128-128", 0.97, {
        "model": "mlp", "layers": [{"units": 128}, {"units": 128}], "activation": "relu",
        "input_scaling": "l2_axis1",  # keras.utils.normalize(x, axis=1), not /255
        # Keras defaults: Adam 1e-3, batch 32. The blog trains on all 60,000 images; here the last
        # 5,000 stay out for validation, as in every trial.
        "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 32, "epochs": 3,
    }),
}


def baselines(*names: str) -> dict[str, dict[str, Any]]:
    """`BASELINES` for a space file: {label: config} of the named seeds."""
    return {SEEDS[name].label: copy.deepcopy(SEEDS[name].config) for name in names}


def shortened(name: str, epochs: int) -> dict[str, dict[str, Any]]:
    """`BASELINES` entry of a tutorial cut to `epochs` of its epochs, and labelled so: for a search whose
    budget one long baseline would otherwise spend (S4-aug's 29 epochs of six copies of every image took
    35.6 of the 70 minutes of an earlier 50-trial CNN search)."""
    seed = SEEDS[name]
    return {f"{seed.label} ({epochs} of {seed.config['epochs']} epochs)": {**copy.deepcopy(seed.config),
                                                                           "epochs": epochs}}


def check_names(names: list[str] | None) -> None:
    """Refuse names that are not tutorials (`baselines --only`), in one line."""
    from search.errors import InputError

    unknown = [name for name in names or [] if name not in SEEDS]
    if unknown:
        raise InputError(f"--only {', '.join(unknown)}: expected one of {', '.join(SEEDS)}")


def scaled(config: dict[str, Any], scale: float) -> dict[str, Any]:
    """The config with its epochs or steps multiplied by `scale` (at least 1), for quick runs."""
    key = "steps" if config.get("steps") else "epochs"
    return {**config, key: max(1, round(config.get(key, 10) * scale))}


def reproduce(names: list[str] | None = None, scale: float = 1.0, seed: int = 0, train_size: int | None = None,
              verbose: bool = False, progress: Callable[[str], None] | None = None) -> Any:
    """`search baselines`: the named tutorials (default: all) trained as written, in float32, on MNIST's
    first `train_size` training images (default: all 55,000), tabulated by `run_baselines`."""
    check_names(names)
    from search.training import datasets
    from search.training.runtime import start_tensorflow

    data = datasets.load("mnist", None, train_size)
    start_tensorflow(verbose=verbose, models={SEEDS[name].config["model"] for name in names or SEEDS},
                     precision="float32")  # the tutorials as written
    return run_baselines(data, names, scale, seed, progress)


def run_baselines(data: Any, names: list[str] | None = None, scale: float = 1.0, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> Any:
    """Train each named seed (default: all) once on `data`; a pandas DataFrame, one row each:
    name, tutorial, published, ours (test accuracy), delta, val_accuracy, epochs (passes over the
    training set an epoch iterates: S4-aug's holds 6 versions of each image), steps, best_epoch
    (the kept round), seconds (wall, validation included).
    `scale` multiplies every seed's epochs or steps; unknown names raise InputError."""
    import pandas as pd

    from search.space import schema
    from search.training import models, train

    check_names(names)
    rows = []
    for name in names or list(SEEDS):
        seed_, config = SEEDS[name], scaled(SEEDS[name].config, scale)
        plan = train.plan(schema.resolve(config), len(data.train_images))
        if progress:
            progress(f"{name}: {seed_.label}, {plan.total_steps:,} steps in {plan.rounds} rounds")
        started = time.perf_counter()
        train.reset(seed)
        callbacks = [_round_report(name, plan.rounds, progress)] if progress else []
        result = train.fit(models.build(config), config, data, callbacks=callbacks)
        test_accuracy = result.accuracy(data.test_images, data.test_labels)
        row = {"name": name, "tutorial": seed_.label, "published": seed_.published, "ours": test_accuracy,
               "delta": test_accuracy - seed_.published, "val_accuracy": result.val_accuracy,
               "epochs": round(plan.total_steps / plan.steps_per_epoch, 2),
               "steps": plan.total_steps, "best_epoch": result.best_epoch,
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        if progress:
            progress(f"{name}: test {test_accuracy:.2%} (published {seed_.published:.2%}) in {row['seconds']} s")
    return pd.DataFrame(rows)


def _round_report(name: str, rounds: int, progress: Callable[[str], None]) -> Any:
    """A Keras callback that reports each round's validation accuracy through `progress`."""
    import keras

    def report(epoch: int, logs: dict[str, Any] | None) -> None:
        progress(f"{name}: round {epoch + 1}/{rounds} val_accuracy {(logs or {}).get('val_accuracy', math.nan):.4f}")

    return keras.callbacks.LambdaCallback(on_epoch_end=report)


def format_table(frame: Any) -> str:
    """The run as a Markdown table with percentages, for the CLI and the README."""
    shown = frame.assign(published=frame.published.map("{:.2%}".format), ours=frame.ours.map("{:.2%}".format),
                         delta=frame.delta.map("{:+.2%}".format),
                         val_accuracy=frame.val_accuracy.map("{:.2%}".format))
    return str(shown.to_markdown(index=False))
