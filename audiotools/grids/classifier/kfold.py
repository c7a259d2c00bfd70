"""`dora grid classifier.kfold`: one XP per fold of the shipped digits, on SLURM.

The XPs are the ones `audiotools kfold solver=classifier/digits` runs locally, so
`audiotools kfold solver=classifier/digits --summary` prints mean ± std for this grid too.
"""
from ...kfold import fold_argvs
from ._explorers import ClassifierExplorer

RECIPE = ["solver=classifier/digits"]


@ClassifierExplorer
def explorer(launcher):
    for argv in fold_argvs(RECIPE):
        launcher(argv)
