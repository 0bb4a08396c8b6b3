"""The tutorials trained as written: the references a search is measured against (`search baselines`).

`reproduce` trains each named tutorial (space/tutorials.py) once on the full data, in float32, with
the same machinery as a trial (`models.build`, `train.fit`) and sets our test accuracy beside the
published one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from search.errors import InputError
from search.space.tutorials import TUTORIALS


def check_names(names: list[str] | None) -> None:
    """Refuse names that are not tutorials (`baselines --only`), in one line."""
    unknown = [name for name in names or [] if name not in TUTORIALS]
    if unknown:
        raise InputError(f"--only {', '.join(unknown)}: expected one of {', '.join(TUTORIALS)}")


def scaled(config: dict[str, Any], scale: float) -> dict[str, Any]:
    """The config with its epochs or steps multiplied by `scale` (at least 1), for quick runs."""
    key = "steps" if config.get("steps") else "epochs"
    return {**config, key: max(1, round(config.get(key, 10) * scale))}


def reproduce(names: list[str] | None = None, scale: float = 1.0, seed: int = 0, train_size: int | None = None,
              verbose: bool = False, progress: Callable[[str], None] | None = None) -> Any:
    """`search baselines`: the named tutorials (default: all) trained as written, in float32, on MNIST's
    first `train_size` training images (default: all 55,000), tabulated by `run_tutorials`."""
    check_names(names)
    from search.training import datasets
    from search.training.runtime import start_tensorflow

    data = datasets.load("mnist", None, train_size)
    start_tensorflow(verbose=verbose, models={TUTORIALS[name].config["model"] for name in names or TUTORIALS},
                     precision="float32")  # the tutorials as written
    return run_tutorials(data, names, scale, seed, progress)


def run_tutorials(data: Any, names: list[str] | None = None, scale: float = 1.0, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> Any:
    """Train each named tutorial (default: all) once on `data`; a pandas DataFrame, one row each:
    name, tutorial, published, ours (test accuracy), delta, val_accuracy, epochs (passes over the
    training set an epoch iterates: S4-aug's holds 6 versions of each image), steps, best_epoch
    (the kept round), seconds (wall, validation included).
    `scale` multiplies every tutorial's epochs or steps; unknown names raise InputError."""
    check_names(names)
    import pandas as pd

    from search.space import schema
    from search.training import models, train

    rows = []
    for name in names or list(TUTORIALS):
        tutorial, config = TUTORIALS[name], scaled(TUTORIALS[name].config, scale)
        plan = train.plan(schema.resolve(config), len(data.train_images))
        if progress:
            progress(f"{name}: {tutorial.label}, {plan.total_steps:,} steps in {plan.rounds} rounds")
        started = time.perf_counter()
        train.reset(seed)
        callbacks = [_round_report(name, plan.rounds, progress)] if progress else []
        result = train.fit(models.build(config), config, data, callbacks=callbacks)
        test_accuracy = result.accuracy(data.test_images, data.test_labels)
        row = {"name": name, "tutorial": tutorial.label, "published": tutorial.published, "ours": test_accuracy,
               "delta": test_accuracy - tutorial.published, "val_accuracy": result.val_accuracy,
               "epochs": round(plan.total_steps / plan.steps_per_epoch, 2),
               "steps": plan.total_steps, "best_epoch": result.best_epoch,
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        if progress:
            progress(f"{name}: test {test_accuracy:.2%} (published {tutorial.published:.2%}) in {row['seconds']} s")
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
