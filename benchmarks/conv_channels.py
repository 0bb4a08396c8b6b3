"""What a convolution's channel count costs: seconds per training epoch of spaces/cnn.py's networks with
filters in multiples of 16 and with counts just beside them.

    .venv/bin/python benchmarks/conv_channels.py [--train-size 12800] [--epochs 3] [--threads 1]

Each network is the space's CNN (3x3 conv, batch norm, ReLU, 2x2 max pooling per block, a dense head of
128, dropout 0.2, random shifts and rotations, batch 128) trained with the harness's compiled loop on
`--train-size` real MNIST images, on `--threads` TensorFlow threads (1: a worker of a 2-worker search on
2 cores) in the precision a searched trial trains in here (`--precision auto`: bfloat16 on a CPU with
AMX, else float32; `--precision float32` to compare). A network's figure is the median of its epochs
after the first (tracing). Prints, per filter list, seconds per epoch of 55,000 images, and the ratio to
the aligned list it stands beside. oneDNN, TensorFlow's CPU kernels, keeps convolution channels in
blocks of 16 (8 on a CPU without AVX-512): a count that is not a multiple falls off its fast path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flags import positive  # noqa: E402

# (aligned, beside it): every count in the first a multiple of 16, none in the second
PAIRS = [((16, 32, 48), (17, 33, 49)), ((32, 64, 64), (30, 62, 62)), ((16, 48), (20, 50)), ((48, 64, 64), (45, 60, 60))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=positive, default=12_800)
    parser.add_argument("--epochs", type=positive, default=3, help="measured epochs after the first")
    parser.add_argument("--threads", type=positive, default=1)
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto")
    args = parser.parse_args()

    import keras

    from search.space import load_space, schema
    from search.training import datasets, runtime, train

    runtime.start_tensorflow(threads=args.threads, models=["cnn"], precision=args.precision)
    precision = runtime.training_precision(args.precision)
    data = datasets.load("mnist", None, args.train_size)
    base = load_space(str(Path(__file__).resolve().parent.parent / "spaces" / "cnn.py")).space

    class EpochEnds(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            self.ends.append(time.perf_counter())

    def seconds_per_epoch(filters: tuple[int, ...]) -> float:
        config = schema.resolve({**base, "conv_blocks": [{"filters": f} for f in filters], "layers": [{"units": 128}],
                                 "dropout": 0.2, "label_smoothing": 0.1, "shift_pixels": 2, "rotation_degrees": 10.0,
                                 "learning_rate": 2e-3, "warmup": 0.1, "epochs": args.epochs + 1})
        train.reset(0)
        ends = EpochEnds()
        train.fit(train.training_model(config, precision), config, data, callbacks=[ends])
        per_epoch = statistics.median(b - a for a, b in zip(ends.ends, ends.ends[1:], strict=False))
        return per_epoch * datasets.TRAIN_SPLIT / len(data.train_labels)

    print(f"{runtime.cpu_model()}, {args.threads} thread(s), {precision}, {runtime.cpu_kernels()} kernels; "
          f"seconds per epoch of 55,000 images (median of {args.epochs}, from {args.train_size:,} images)")
    for aligned, beside in PAIRS:
        fast, slow = seconds_per_epoch(aligned), seconds_per_epoch(beside)
        print(f"  {'-'.join(map(str, aligned)):>9}: {fast:6.1f} s   {'-'.join(map(str, beside)):>9}: {slow:6.1f} s"
              f"   {slow / fast:4.2f}x", flush=True)


if __name__ == "__main__":
    main()
