"""The study stage: trials of an Optuna study, run in worker processes, recorded and kept.

`studies` opens a study (storage, sampler, pruner, settings), `objective` runs one Optuna trial,
`record` names what each trial stores and what counts toward the budget, `storage` is where
studies live and what happens to trials whose worker died, `workers` runs trials in processes,
`artifacts` keeps the best trials' weights (in the results folder, and an artifact store that every
machine reaches), `progress` shows a running search. The modules are not
imported here, so that reading a stored study never loads TensorFlow.
"""
