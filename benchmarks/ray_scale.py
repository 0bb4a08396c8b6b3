"""The scale test through Ray: 8 workers x 20 trials on a two-node local cluster, one node removed mid-search.

    .venv/bin/python benchmarks/ray_scale.py [--workers 8] [--trials 160] [--remove-after 40]

The search joins a `ray.cluster_utils.Cluster` of two nodes declaring `--workers` CPUs between them,
with its study on a throwaway PostgreSQL server (tests/postgres_server.py). Once `--remove-after`
trials have finished, the node that is not the head is removed, with the workers and trials on it.
Prints whether the budget was exact, what was lost and queued again, the wall time and how far the
machine's used memory rose.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

SPACE = '''
from search.space import Float, Int, Repeat
SPACE = {"model": "mlp", "layers": Repeat(Int(1, 2), {"units": Int(16, 64, log=True)}),
         "learning_rate": Float(1e-3, 1e-2, log=True), "batch_size": 128}
'''


def main() -> None:
    from postgres_server import running
    from ray.cluster_utils import Cluster
    from workers import used_memory

    from search.study import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=160)
    parser.add_argument("--remove-after", type=int, default=40)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, running() as server:
        space = Path(tmp) / "scale.py"
        space.write_text(SPACE)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.workers // 2})
        other = cluster.add_node(num_cpus=args.workers - args.workers // 2)
        cluster.wait_for_nodes()
        base, peak = used_memory(), 0
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "search", "run", str(space), "--trials", str(args.trials), "--workers",
             str(args.workers), "--epochs", "1", "--train-size", "300", "--seed", "0", "--storage", server.url,
             "--results", str(Path(tmp) / "results"), "--ray", cluster.address], stdout=subprocess.DEVNULL)
        removed_at = None
        while process.poll() is None:
            time.sleep(0.5)
            peak = max(peak, used_memory() - base)
            if removed_at is None:
                try:
                    trials = optuna.load_study(study_name="scale", storage=server.url).get_trials(deepcopy=False)
                except KeyError:
                    continue
                if sum(record.ended_on_its_own(t) for t in trials) >= args.remove_after:
                    cluster.remove_node(other)
                    removed_at = time.perf_counter() - started
        wall = time.perf_counter() - started
        trials = optuna.load_study(study_name="scale", storage=server.url).get_trials(deepcopy=False)
        cluster.shutdown()
    counted = sum(record.counts_toward_budget(t) for t in trials)
    lost = [t.number for t in trials if record.lost_with_worker(t)]
    running_left = [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
    print(f"{args.workers} workers on 2 Ray nodes, {args.trials} trials (1 epoch, 300 images), PostgreSQL; "
          f"exit code {process.returncode}")
    print(f"node removed at {removed_at:.0f} s" if removed_at is not None else "node never removed")
    print(f"counted {counted} of {args.trials}; {len(lost)} lost with the node and queued again {lost}; "
          f"{len(running_left)} left running or waiting")
    print(f"wall {wall:.0f} s, {3600 * args.trials / wall:.0f} trials per hour; used memory rose {peak / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
