"""The seeds of the checks' cases: a public one for the visible cases, the instructor's for the hidden ones."""

VISIBLE_SEED = 20_240_607
HIDDEN_SEED_VARIABLE = "TFCOURSE_HIDDEN_SEED"  # the environment variable holding the instructor's seed
