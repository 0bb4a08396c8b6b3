"""Dense networks for MNIST: depth, width, activation, dropout, L2, optimizer, schedule, averaging.

    python -m search run spaces/mlp.py --trials 50

Three tutorials run first as labelled baselines: S2 (784-512-256-128 without activations, Adam
1e-4, 1,000 steps), S3 (784-500 ReLU, SGD 0.8 decayed by 0.99 an epoch, L2, a moving average of
the weights, 30,000 steps) and S5 (two Dense-128 ReLU layers on `keras.utils.normalize`d images,
Adam, 3 epochs of batch 32). The search then looks for a better network around them.

Measured (`--trials 50`, 2 workers by default, 2-core CPU machine, no GPU): nine runs took 3 min
10 s to 11 min 27 s, best test 98.50-98.72% where the search beat its baselines, peak memory
0.97-1.10 GB (the largest process); the README lists them. The README's command in a fresh clone
at e56a9dd: 5 min 19 s, 26 trials complete, 24 pruned; baselines S2 91.69% test (published
92.06%), S3 98.43% (98.5%), S5 96.75% (97%); best searched 98.68% test (trial 43: 435-271-113
GELU, dropout 0.24, batch norm, L2 1e-5, RMSprop 2.3e-3 with momentum 0.9, cosine schedule, batch
512). Widths stop at 512 and training at 10 epochs to bound the search's cost: with widths up to
1024 and 12 epochs the same command took 7.6-21.4 minutes (TPE sometimes settles on 3-layer
networks of 1-2 million weights, 90-170 s each) for the same best test accuracy (98.50-98.74%).
Plain MLPs without augmentation top out around 98.4-99.0%, so more trials buy tenths of a percent.
"""

from search.baselines import baselines
from search.space import Choice, Float, Int, Repeat

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
