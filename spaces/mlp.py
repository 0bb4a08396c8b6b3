"""Dense networks for MNIST: depth, width, activation, dropout, L2, optimizer, schedule, averaging.

    python -m search run spaces/mlp.py --trials 50

The S2, S3 and S5 tutorials run first as labelled baselines. Result (2-core CPU, docs/performance.md):
6.5 min; confirmed winner 98.52 ± 0.11% test against S3's 98.45 ± 0.04%, within the noise.
"""

from search.space import Choice, Float, Int, Repeat, baselines

SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 3), {"units": Int(64, 512, log=True)}),
    "activation": Choice(["relu", "selu", "gelu"]),
    "dropout": Float(0.0, 0.5),
    "batch_norm": Choice([False, True]),
    "l2": Choice([0.0, 1e-5, 1e-4]),  # 0 is no penalty, so a Choice rather than a log-scale Float
    # Each optimizer searches the learning rates it works at: plain SGD (S1, S3) wants far larger ones.
    "optimizer": Choice({
        "adam": {"learning_rate": Float(1e-4, 1e-2, log=True)},
        "rmsprop": {"learning_rate": Float(1e-4, 1e-2, log=True), "momentum": 0.9},
        "sgd": {"learning_rate": Float(1e-2, 1.0, log=True), "momentum": Choice([0.0, 0.9])},
    }),
    "schedule": Choice({
        "constant": {},
        "exponential": {"decay_rate": Float(0.7, 0.99)},  # per epoch (decay_steps 0), smooth
        "cosine": {},  # to zero over the whole run
    }),
    "ema": Choice([0.0, 0.99]),  # evaluate a moving average of the weights (S3), or the weights
    "batch_size": Choice([128, 256, 512]),
    "epochs": 8,
}

BASELINES = baselines("S2", "S3", "S5")
