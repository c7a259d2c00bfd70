"""Files a run leaves behind and models are read from: XP checkpoints, exported models, and
loading either (or another tool's checkpoint) as a model.

Nothing here imports flashy, dora, the loggers or the solvers: inference reads models through
this package alone."""
