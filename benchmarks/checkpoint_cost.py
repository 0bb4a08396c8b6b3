"""What keeping a trial's progress on disk costs: seconds per epoch of spaces/mlp.py's largest model with
and without `fit(progress=...)`, and the time of one state write.

    .venv/bin/python benchmarks/checkpoint_cost.py [--epochs 4] [--repeats 2] [--train-size N]

The model is the space's widest (two layers of 640 units, batch norm, random augmentation, cosine
schedule) on the full training set unless --train-size; the two setups alternate, each run in the same
process after one warm-up, and the first epoch of each run (tracing) is left out.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=None)
    args = parser.parse_args()

    import keras

    from search.space import load_space, schema
    from search.training import checkpoint, datasets, runtime, train

    runtime.start_tensorflow(verbose=False)
    data = datasets.load("mnist", None, args.train_size)
    config = {**load_space("spaces/mlp.py").space, "layers": [{"units": 640}, {"units": 640}], "activation": "relu",
              "dropout": 0.1, "batch_norm": True, "label_smoothing": 0.1, "learning_rate": 1e-3,
              "rotation_degrees": 10.0, "batch_size": 128, "epochs": args.epochs}
    config = schema.resolve(config)

    class EpochTimes(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            self.ends.append(time.perf_counter())

    def per_epoch(folder: Path | None) -> float:
        train.reset(0)
        times = EpochTimes()
        train.fit(train.training_model(config), config, data, callbacks=[times], progress=folder)
        return (times.ends[-1] - times.ends[0]) / (len(times.ends) - 1)  # from the end of the first epoch

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "progress"
        per_epoch(None)  # warm-up: data on the device, kernels chosen
        plain, kept = [], []
        for _ in range(args.repeats):
            plain.append(per_epoch(None))
            kept.append(per_epoch(folder))
        size = (folder / checkpoint.STATE).stat().st_size
        state = checkpoint.load(folder)
        assert state is not None
        started = time.perf_counter()
        for _ in range(5):
            checkpoint.save(folder, state)
        write = (time.perf_counter() - started) / 5
    without, with_ = statistics.median(plain), statistics.median(kept)
    print(f"train size {len(data.train_images)}, {args.epochs} epochs x {args.repeats} runs each")
    print(f"seconds per epoch without progress kept: {without:.2f}  ({', '.join(f'{t:.2f}' for t in plain)})")
    print(f"seconds per epoch with progress kept:    {with_:.2f}  ({', '.join(f'{t:.2f}' for t in kept)})")
    print(f"difference: {with_ - without:+.3f} s ({100 * (with_ - without) / without:+.1f}%); one state write "
          f"{write:.3f} s, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
