"""Which CPU kernels train faster on this machine, oneDNN's or Eigen's: the evidence behind
`search.runtime.use_onednn`.

    .venv/bin/python benchmarks/kernels.py [--pairs 4] [--workloads 0 1 2] [--processes 1] [--epochs 3]

Trains `throughput.py`'s workloads (0: S2 MLP at batch 128, 1: at batch 512, 2: the CNN at 128)
with the harness's compiled loop in fresh processes, TF_ENABLE_ONEDNN_OPTS=0 and =1 taking turns
in ABBA order (so that a slow spell of this VM falls on both), `--pairs` times each. With
`--processes 2` two processes train at once, each on half the cores (one TensorFlow thread each
on 2 cores), as `run` starts two workers, and their samples per second are added
(`throughput.at_once`). Each process trains a warm-up
epoch and `--epochs` measured ones on `--images` images (default: 40,000 for the MLP, 16,000 for
the CNN); a process's figure is the median of its epochs. Prints, per workload, the median
samples/s with each kernel set, their ratio and how many pairs each won.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from flags import positive  # noqa: E402
from throughput import WORKLOADS, at_once  # noqa: E402

KERNELS = {"0": "Eigen", "1": "oneDNN"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=positive, default=4, help="runs with each kernel set, in ABBA order (4)")
    parser.add_argument("--workloads", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2])
    parser.add_argument("--processes", type=int, default=1, choices=[1, 2], help="processes training at once (1)")
    parser.add_argument("--epochs", type=positive, default=3, help="measured epochs per process, after a warm-up (3)")
    parser.add_argument("--images", type=positive, help="training images per epoch (40,000 MLP, 16,000 CNN)")
    args = parser.parse_args()

    print(f"{args.processes} process(es) at once; {args.pairs} runs with each kernel set, ABBA order", flush=True)
    for workload in args.workloads:
        name, base, batch_size = WORKLOADS[workload]
        images = args.images or (16_000 if base["model"] == "cnn" else 40_000)
        rates: dict[str, list[float]] = {"0": [], "1": []}
        for pair in range(args.pairs):
            for onednn in ("01" if pair % 2 == 0 else "10"):
                rates[onednn].append(at_once(workload, images, args.epochs, onednn == "1", args.processes))
                print(f"  {name}, batch {batch_size}, {KERNELS[onednn]}: {rates[onednn][-1]:,.0f} samples/s",
                      flush=True)
        eigen, onednn_rate = statistics.median(rates["0"]), statistics.median(rates["1"])
        wins = sum(a > b for a, b in zip(rates["1"], rates["0"], strict=True))
        print(f"{name}, batch {batch_size}: Eigen {eigen:,.0f}, oneDNN {onednn_rate:,.0f} samples/s (medians); "
              f"oneDNN/Eigen {onednn_rate / eigen:.2f}x; oneDNN faster in {wins} of {args.pairs} pairs", flush=True)


if __name__ == "__main__":
    main()
