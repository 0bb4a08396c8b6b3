"""Other search engines over the same space files, studies and trial record: `keras_tuner`
(KerasTuner 1.4's Hyperband, Bayesian and random tuners) and its space declaration
(`keras_tuner_space`). Only this package loads KerasTuner.
"""
