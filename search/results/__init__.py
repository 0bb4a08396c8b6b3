"""The results stage: what a stored study says, read without running it.

`leaderboard` (ranked tables), `confirm` (the best configurations trained again over seeds, and
the verdict against the best baseline), `replay` (one trial trained again from its record),
`report` (one self-contained page), `export` (a kept trial as .keras, SavedModel and TFLite).
"""
