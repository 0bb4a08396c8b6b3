"""Training one model on in-memory data: the fit stage (model + config -> best-epoch model).

`fit` compiles the model with the config's optimizer, learning rate and batch size, trains it for
the config's epochs and hands every epoch's validation accuracy to the callbacks it is given (the
study passes optuna-integration's `KerasPruningCallback`, so this module knows nothing of Optuna).
`EpochLog` keeps the learning curve and the best epoch's weights, which are restored before
returning; a NaN loss stops training and fails the trial. Test accuracy is measured by `evaluate`,
once, after training: the search itself only ever sees validation accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from search import schema
from search.data import Dataset
from search.errors import TrialFailed

# Run this many batches per call into the compiled train step: on small MNIST models most of the
# time of plain fit() is Python overhead per step, and batching steps removes most of it
# (measured: 2.59 s against 3.53 s per epoch of the S2 MLP at batch 128 on 2 cores).
STEPS_PER_EXECUTION = 32
# XLA on the CPU made that epoch slower (3.87 s with steps batched, 7.82 s without), and its
# compile time is paid again for every trial's new model.
JIT_COMPILE = False
EVAL_BATCH_SIZE = 1000


class EpochLog(keras.callbacks.Callback):
    """Validation accuracy of each epoch, the best epoch's weights, and NaN detection."""

    def __init__(self, monitor: str = "val_accuracy") -> None:
        super().__init__()
        self.monitor = monitor
        self.val_history: list[float] = []
        self.loss_history: list[float] = []
        self.best_epoch = 0  # 1-based; 0 until an epoch finishes
        self.best_weights: list[np.ndarray] | None = None
        self.nan_epoch: int | None = None
        self.started = time.perf_counter()
        self.seconds = 0.0  # training time up to the last finished epoch

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    @property
    def best_value(self) -> float:
        return self.val_history[self.best_epoch - 1] if self.best_epoch else float("nan")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.seconds = time.perf_counter() - self.started
        loss = float(logs.get("loss", float("nan")))
        value = float(logs.get(self.monitor, float("nan")))
        self.loss_history.append(loss)
        self.val_history.append(value)
        if not math.isfinite(loss):
            self.nan_epoch = epoch + 1
            self.model.stop_training = True
            return
        if not self.best_epoch or value > self.best_value:
            self.best_epoch = epoch + 1
            self.best_weights = [np.array(w) for w in self.model.get_weights()]


@dataclass
class FitResult:
    """What one training run produced; `model` holds the best epoch's weights."""

    model: keras.Model
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    train_seconds: float
    val_history: list[float]


def reset(seed: int) -> None:
    """Free the previous trial's graph (so memory does not grow with trials) and seed everything."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def make_optimizer(config: dict[str, Any]) -> keras.optimizers.Optimizer:
    """The config's optimizer at its learning rate (momentum for sgd and rmsprop)."""
    name, rate, momentum = config["optimizer"], config["learning_rate"], config["momentum"]
    if name == "adam":
        return keras.optimizers.Adam(rate)
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(rate, momentum=momentum)
    raise TrialFailed(f"unknown optimizer {name!r}")  # schema validation makes this unreachable


def fit(
    model: keras.Model,
    config: dict[str, Any],
    data: Dataset,
    callbacks: list[keras.callbacks.Callback] | None = None,
    log: EpochLog | None = None,
) -> FitResult:
    """Train `model` as `config` says; callbacks see `val_accuracy` after every epoch.

    Pass your own `log` to read the learning curve even when a callback (a pruner) raises.
    """
    config = schema.resolve(config)
    log = log if log is not None else EpochLog()
    model.compile(
        optimizer=make_optimizer(config),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
        jit_compile=JIT_COMPILE,
    )
    model.fit(
        data.train_images,
        data.train_labels,
        batch_size=config["batch_size"],
        epochs=config["epochs"],
        validation_data=(data.val_images, data.val_labels),
        validation_batch_size=EVAL_BATCH_SIZE,
        shuffle=True,
        verbose=0,
        callbacks=[log, *(callbacks or [])],
    )
    if log.nan_epoch is not None:
        raise TrialFailed(f"loss became NaN at epoch {log.nan_epoch}")
    if log.best_weights is not None:
        model.set_weights(log.best_weights)
    return FitResult(model, log.best_value, log.best_epoch, len(log.val_history), log.seconds, log.val_history)


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of `model` on the given images."""
    probabilities = model.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))
