"""Dense networks for MNIST: depth, width, activation, dropout, batch norm, optimizer.

    python -m search run spaces/mlp.py --trials 50

The S5 tutorial network (two Dense-128 ReLU layers, Adam, 3 epochs of batch 32) runs first as a
labelled baseline; the search then looks for a better one around it.

Measured (`benchmarks/throughput.py`, 2-core machine otherwise idle, compiled trainer): 15 min 12 s,
peak memory 2.36 GB, 15 trials complete and 35 pruned. S5 scored 97.43% test; the best trial 98.55%
(619-407-131 GELU, dropout 0.40, batch norm, RMSprop, batch 512; trial 2).
"""

from search.space import Choice, Float, Int, Repeat

SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 3), {"units": Int(64, 1024, log=True)}),
    "activation": Choice(["relu", "selu", "gelu"]),
    "dropout": Float(0.0, 0.5),
    "batch_norm": Choice([False, True]),
    "optimizer": Choice(["adam", "rmsprop", "sgd"]),
    "learning_rate": Float(1e-4, 1e-2, log=True),
    "momentum": 0.9,  # used by sgd and rmsprop; plain values are fixed, not searched
    "batch_size": Choice([64, 128, 256, 512]),
    "epochs": 12,
}

BASELINES = {
    "S5 Keras 128-128": {
        "model": "mlp",
        "layers": [{"units": 128}, {"units": 128}],
        "activation": "relu",
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 32,
        "epochs": 3,
    },
}
