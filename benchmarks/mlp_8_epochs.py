"""The dense space before successive halving, for benchmarks/time_to_accuracy.py: every trial 8 epochs
on the plain digits, the median pruner, optimizers, schedules and weight averaging searched.

    python -m search run benchmarks/mlp_8_epochs.py --trials 50
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
