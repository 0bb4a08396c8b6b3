"""TensorBoard's view of a study (`--tensorboard DIR`): event files beside the trial lifecycle.

The run writes the experiment once, at DIR's top (`write_experiment`: the HParams plugin's list of
hyperparameters and metrics); each trial then writes its own run, DIR/trial-NNNNN (`TrialLog`):
its training loss and validation accuracy after every epoch, then, as it ends, its hyperparameters
(the concrete config, flattened: `layers.0.units`, `learning_rate`; its baseline label; its state:
complete, pruned, failed, ...) and its final figures. So `tensorboard --logdir DIR` shows the curves
and the HParams table of every trial, pruned ones included, whichever engine or worker ran them. The
table's first column, the trial ID, is the trial's number and how it ended (`00007 pruned`, short enough
for the column): TensorBoard shows only the first five hyperparameters by name until more are ticked, and
`state` is rarely among them.
The files are written with TensorBoard's own protocol buffers and event writer, without TensorFlow,
so the process that starts the workers does not load it; TensorBoard itself is an optional package
(TensorFlow 2.21 no longer brings it): `pip install -e '.[tensorboard]'`.
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path
from typing import Any

from search.errors import InputError
from search.files import check_writable
from search.space import Space, Walker

STATES = ["complete", "pruned", "failed", "rejected", "interrupted"]
# The HParams plugin's metrics: each a scalar tag a trial writes once, as it ends.
METRICS = {"final/val_accuracy": "val accuracy (the kept epoch)", "final/test_accuracy": "test accuracy",
           "final/epochs": "epochs trained"}
EPOCH_TAGS = ("loss", "val_accuracy")  # written after every epoch, step = the epoch's number from 1


def check_dir(path: str | None, flag: str = "--tensorboard") -> None:
    """A directory the event files can go to: it is one or can be made, and may be written; nothing is
    created here. Also that TensorBoard's package is there to write them."""
    if path is None:
        return
    if importlib.util.find_spec("tensorboard") is None:
        raise InputError(f"{flag} {path}: needs the tensorboard package (TensorFlow 2.21 no longer brings it): "
                         "pip install -e '.[tensorboard]'")
    check_writable(path, flag)


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A config as the HParams plugin takes it: one scalar per dotted key (`layers.0.units`), a list of
    blocks also as its count (`layers.count`); other lists and None as text."""
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    name = prefix.rstrip(".")
    if isinstance(config, list) and config and all(isinstance(item, dict) for item in config):
        out = {f"{name}.count": len(config)}
        for index, item in enumerate(config):
            out.update(flatten(item, f"{name}.{index}."))
        return out
    if isinstance(config, (bool, int, float, str)):
        return {name: config}
    return {name: str(config)}


def hparams(config: dict[str, Any], baseline: str | None, state: str) -> dict[str, Any]:
    """One trial's hyperparameters: its concrete config flattened, its baseline label ("" when searched)
    and how it ended."""
    return {**flatten(config), "baseline": baseline or "", "state": state}


def write_experiment(folder: Path, space: Space) -> None:
    """The HParams plugin's experiment, once at the top of `folder`: every key a config of `space` or one
    of its baselines can have, the baseline label and the state, and the final metrics."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    if any(folder.glob("events.out.tfevents.*")):
        return
    names = set(flatten(Walker().walk(space.space)))  # every branch entered, every Repeat at its most blocks
    for config in space.baselines.values():
        names |= set(flatten(config))
    params = [hp.HParam(name) for name in sorted(names - {"baseline", "state"})]
    params += [hp.HParam("baseline", hp.Discrete(["", *space.baselines])), hp.HParam("state", hp.Discrete(STATES))]
    metrics = [hp.Metric(tag, display_name=shown) for tag, shown in METRICS.items()]
    _write(folder, [(0, hp.hparams_config_pb(params, metrics))])


class TrialLog:
    """One trial's run, `folder`/trial-NNNNN: its epochs as they end (`callback`), then its hyperparameters
    and final figures (`end`)."""

    def __init__(self, folder: Path, number: int) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.started = time.time()
        self.writer = EventFileWriter(str(folder / f"trial-{number:05d}"))

    def epoch(self, step: int, logs: dict[str, Any]) -> None:
        values = {tag: float(logs[tag]) for tag in EPOCH_TAGS if tag in logs}
        self._add(step, _scalars(values))

    def callback(self, first_round: int = 0) -> Any:
        """A Keras callback writing each epoch's loss and validation accuracy; `first_round` counts the
        rounds an earlier fit of the same model trained (a continued trial)."""
        import keras

        log = self

        class WriteEpochs(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                log.epoch(first_round + epoch + 1, logs or {})

        return WriteEpochs()

    def end(self, hyperparameters: dict[str, Any], val_history: list[float], test_accuracy: float | None) -> None:
        """Write the trial's hyperparameters (the HParams plugin's session, its trial ID the trial's number
        and `state`) and its final figures (METRICS: the best epoch's validation accuracy, as the trial record
        has it, the test accuracy of a completed trial, the epochs trained); then close the file."""
        from tensorboard.plugins.hparams import summary_v2 as hp

        finite = [value for value in val_history if math.isfinite(value)]
        figures = {"final/val_accuracy": max(finite, default=None), "final/test_accuracy": test_accuracy,
                   "final/epochs": float(len(val_history))}
        try:
            trial_id = f"{Path(self.writer.get_logdir()).name.removeprefix('trial-')} {hyperparameters['state']}"
            self._add(0, hp.hparams_pb(hyperparameters, trial_id=trial_id, start_time_secs=self.started))
            self._add(0, _scalars({tag: value for tag, value in figures.items() if value is not None}))
        finally:
            self.writer.close()

    def _add(self, step: int, summary: Any) -> None:
        from tensorboard.compat.proto import event_pb2

        self.writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))


def _scalars(values: dict[str, float]) -> Any:
    """Scalars as TensorBoard's reader and its scalars dashboard take them (`simple_value`)."""
    from tensorboard.compat.proto import summary_pb2

    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                      for tag, value in values.items()])


def _write(folder: Path, summaries: list[tuple[int, Any]]) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    try:
        for step, summary in summaries:
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
    finally:
        writer.close()
