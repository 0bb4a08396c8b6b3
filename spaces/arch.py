"""Conv or dense, as one conditional space: which kind of network wins at a similar budget.

    python -m search run spaces/arch.py --trials 50

`model` is a branch: a dense network searches its hidden layers and dropout, a CNN its conv blocks
and dense head; both share the activation, batch norm, learning rate and batch size, so TPE models
each branch's own parameters apart and compares the branches on one leaderboard. The S5 tutorial
network runs first as a labelled baseline.

Measured (`--trials 50 --workers 2 --seed 0`, 2-core CPU machine, no GPU): 29 min 54 s, peak
memory 2.57 GB (the largest process); 27 trials complete, 23 pruned. TPE gave 34 of the 49 searched
trials to the CNN branch (22 complete) and 15 to the dense one (4 complete). S5 scored 97.40% test;
the best CNN 99.19% (trial 22: conv 32 5x5 -> 32 5x5, SELU 35, Adam 5.7e-4, batch 64, 6 epochs,
183 s), the best dense network 98.02% (trial 6: 795-144 ReLU). The best by validation (trial 16,
99.28%) scored 99.01% test.
"""

from search.baselines import baselines
from search.space import Choice, Float, Int, Repeat

SPACE = {
    "model": Choice({
        "mlp": {
            "layers": Repeat(Int(1, 3), {"units": Int(64, 1024, log=True)}),
            "dropout": Float(0.0, 0.5),
        },
        "cnn": {
            "conv_blocks": Repeat(Int(1, 2), {"filters": Int(8, 32, log=True), "kernel_size": Choice([3, 5])}),
            "layers": Repeat(Int(0, 1), {"units": Int(32, 256, log=True)}),
            "conv_activation": "relu",
        },
    }),
    "activation": Choice(["relu", "selu"]),
    "batch_norm": Choice([False, True]),
    "learning_rate": Float(3e-4, 3e-3, log=True),
    "batch_size": Choice([64, 128, 256]),
    "epochs": 6,
}

BASELINES = baselines("S5")
