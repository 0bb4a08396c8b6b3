"""Softmax regression (784 -> 10, no hidden layer): S1 and a small search around it.

    python -m search run spaces/softmax.py --trials 50

Result (2-core CPU, docs/performance.md): 39 s, best 92.87% test against S1's 91.68%: a linear
model tops out near 92-93%, the ceiling is the model, not the tuning.
"""

from search.space import Choice, Float, baselines

SPACE = {
    "model": "softmax",
    "init": Choice(["zeros", "glorot"]),
    "optimizer": Choice({
        "sgd": {"learning_rate": Float(0.01, 1.0, log=True)},
        "adam": {"learning_rate": Float(1e-4, 3e-2, log=True)},
    }),
    "schedule": Choice(["constant", "cosine"]),
    "batch_size": Choice([50, 100, 200]),
    "epochs": 5,
}

BASELINES = baselines("S1")
