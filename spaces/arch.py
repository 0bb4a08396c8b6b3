"""Conv or dense, as one conditional space: which kind of network wins at a similar budget.

    python -m search run spaces/arch.py --trials 50
    python -m search run spaces/arch.py --objectives accuracy,params    # the size-accuracy front

`model` is a branch, so TPE models each kind's parameters apart; S5 runs first as a baseline.
Dense widths start at 2: below about 4,600 weights (the smallest CNN here) only a dense network
fits, so both kinds meet on the size-accuracy front. Result (2-core CPU, docs/performance.md), with
--objectives accuracy,params: 9.6 min, a front of 4 dense networks (up to 88.6% test) and 3 CNNs.
"""

from search.space import Choice, Float, Int, Repeat, baselines

SPACE = {
    "model": Choice({
        "mlp": {
            "layers": Repeat(Int(1, 3), {"units": Int(2, 1024, log=True)}),
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
