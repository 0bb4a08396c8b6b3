"""Where one training step of the harness's compiled loop spends its time, op by op.

    .venv/bin/python benchmarks/step_profile.py [--batch 128] [--calls 4] [--model mlp|cnn] [--nodes]

Trains the S2 MLP (784-512-256-128-10, ReLU, Adam; or the benchmark's small CNN) with
`search.train.CompiledLoop` on real MNIST, with the CPU kernels a lone worker picks for that model
(`search.runtime.use_onednn`), times `--calls` calls of `BATCHES_PER_CALL` batches
without the profiler, then again under TensorFlow's profiler, and prints the time of each kind of
TensorFlow op per training step, per executor thread. Times are thread time: TensorFlow runs
independent ops on its inter-op threads side by side, so their sum can exceed the wall time.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flags import positive  # noqa: E402

from search.training.runtime import start_tensorflow  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=positive, default=128)
    parser.add_argument("--calls", type=positive, default=4, help="calls of the compiled loop to time (4)")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--nodes", action="store_true", help="one row per graph node, not per op type")
    return parser.parse_args()


ARGS = arguments()  # first: the model picks the CPU kernels TensorFlow starts with, as in a worker
start_tensorflow(models={ARGS.model})

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from search.space import schema  # noqa: E402
from search.training import datasets, models, train  # noqa: E402
from search.training.optimizers import make_optimizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import CNN, MLP  # noqa: E402


def main() -> None:
    args = ARGS

    config = schema.resolve({**(MLP if args.model == "mlp" else CNN), "batch_size": args.batch})
    dataset = datasets.load("mnist")
    train.reset(0)
    loop = train.CompiledLoop(models.build(config), make_optimizer(config), config, dataset)
    chunk = args.batch * train.BATCHES_PER_CALL
    order = np.random.permutation(len(dataset.train_images)).astype(np.int32)
    calls = [order[(i * chunk) % (len(order) - chunk):][:chunk] for i in range(args.calls)]
    steps = args.calls * train.BATCHES_PER_CALL

    def run() -> float:
        started = time.perf_counter()
        for indices in calls:
            float(loop.train(indices))
        return (time.perf_counter() - started) / steps

    for _ in range(2):  # trace and warm up
        float(loop.train(calls[0]))
    plain = run()
    folder = tempfile.mkdtemp()
    tf.profiler.experimental.start(folder)
    profiled = run()
    tf.profiler.experimental.stop()
    print(f"{args.model} batch {args.batch}: {plain * 1e3:.2f} ms a step ({args.batch / plain:,.0f} samples/s); "
          f"{profiled * 1e3:.2f} ms under the profiler")

    space = xplane_pb2.XSpace()
    space.ParseFromString(next(Path(folder).rglob("*.xplane.pb")).read_bytes())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    names = {key: meta.name for key, meta in plane.event_metadata.items()}
    time_of: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    busy = 0.0
    for line in plane.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        for event in line.events:
            full = names.get(event.metadata_id, "?")  # "node/name:OpType"
            name = full if args.nodes else full.rsplit(":", 1)[-1]
            if name.endswith("Process"):  # one executor task: the ops below run inside these
                busy += event.duration_ps / 1e9
                continue
            time_of[name] += event.duration_ps / 1e9
            count[name] += 1
    threads = sum(1 for line in plane.lines if line.name.startswith("tf_Compute") and line.events)
    print(f"executor threads: {threads}, busy {busy / steps:.2f} ms a step in all "
          f"(of {threads * profiled * 1e3:.2f} ms of thread time)")
    print(f"{'ms/step':>8} {'calls/step':>10}  op")
    for name, spent in time_of.most_common(25 if args.nodes else 15):
        print(f"{spent / steps:8.3f} {count[name] / steps:10.1f}  {name}")


if __name__ == "__main__":
    main()
