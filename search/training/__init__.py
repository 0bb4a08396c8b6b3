"""The training stage: one concrete config in, one trained Keras model out.

    datasets.load -> models.build(config) -> train.fit(model, config, data) -> FitResult

`datasets` (MNIST and Fashion-MNIST, verified and split), `models` (builders from plain config
dicts), `train` (the compiled training loop), `optimizers` and `augment` (its parts), `runtime`
(TensorFlow's start in a process: threads, kernels, precision). Nothing here knows of Optuna or of
any search engine: the study stage drives training through callbacks. The modules are not imported
here, so that `datasets` can be used without loading TensorFlow.
"""
