"""A training run's progress on disk, so that a run cut short can be continued: part of the fit stage.

`fit` given a folder writes `state.npz` there before each epoch (round) after the first: the model's
weights, the optimizer's variables (its iteration count among them, so a learning-rate schedule goes
on at the right step), the rounds finished, the learning curve and the best epoch's weights so far,
and numpy's random state and the unused part of the order of examples (so the next round visits the
examples in the order the cut run would have). One file written through `files.write_atomic`: a
process killed while writing leaves the previous state, never half of one. `fit` given a loaded
`State` as well goes on from its next round. Written before a round rather than after it, the
weights are the raw ones even when the validation used the averaged ones (`AveragedWeights` puts the
raw ones back as a round begins). TensorFlow's own random state (dropout masks, augmentation) is
not kept: a continued run is the same training, not the same numbers.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.files import write_atomic

STATE = "state.npz"


@dataclass
class State:
    """Where a training run was at the start of round `rounds_done` (0-based: that many are finished)."""

    config: dict[str, Any]  # the resolved config it trains: a state is continued only by the same one
    rounds_done: int
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    val_history: list[float]
    loss_history: list[float]
    best_epoch: int
    best_weights: list[np.ndarray] | None
    seconds: float  # training time of the finished rounds
    random_state: tuple[Any, ...]  # numpy's global generator (np.random.get_state())
    left: np.ndarray  # IndexStream.left: the examples of the current pass not yet visited (training by steps)


def save(folder: Path, state: State) -> None:
    """Write `state` to `folder`, replacing the one there at once."""
    arrays: dict[str, np.ndarray] = {"left": state.left}
    for prefix, values in (("weight", state.weights), ("optimizer", state.optimizer),
                           ("best", state.best_weights or [])):
        arrays.update({f"{prefix}_{index}": np.asarray(value) for index, value in enumerate(values)})
    kind, keys, position, has_gauss, cached = state.random_state
    arrays["random_keys"] = np.asarray(keys)
    meta = {"config": state.config, "rounds_done": state.rounds_done, "val_history": state.val_history,
            "loss_history": state.loss_history, "best_epoch": state.best_epoch, "seconds": state.seconds,
            "counts": [len(state.weights), len(state.optimizer), len(state.best_weights or [])],
            "has_best": state.best_weights is not None,
            "random": [kind, int(position), int(has_gauss), float(cached)]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)  # uncompressed: weights barely compress, and this runs every round
    write_atomic(folder / STATE, buffer.getvalue())


def load(folder: Path) -> State | None:
    """The state saved in `folder`; None if there is none, or it cannot be read."""
    try:
        with np.load(folder / STATE) as stored:
            meta = json.loads(stored["meta"].tobytes().decode())
            weights, optimizer, best = ([stored[f"{prefix}_{index}"] for index in range(count)]
                                        for prefix, count in zip(("weight", "optimizer", "best"), meta["counts"],
                                                                 strict=True))
            kind, position, has_gauss, cached = meta["random"]
            return State(meta["config"], int(meta["rounds_done"]), weights, optimizer,
                         [float(v) for v in meta["val_history"]], [float(v) for v in meta["loss_history"]],
                         int(meta["best_epoch"]), best if meta["has_best"] else None, float(meta["seconds"]),
                         (kind, stored["random_keys"], position, has_gauss, cached), stored["left"])
    except (OSError, ValueError, KeyError):  # none yet, or not one this code wrote
        return None


def remove(folder: Path) -> None:
    """Forget the progress kept in `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
