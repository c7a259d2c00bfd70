"""`dora grid diffusion.debug`: the debug recipe (an unconditional 1-D U-Net on the shipped
ensembles, two epochs with evaluate and generate at the end; seconds on a CPU) at two learning
rates. A grid to try the cluster with, or to copy for a real sweep; without SLURM,
`audiotools grid diffusion.debug` runs the same XPs here."""
from ._explorers import DiffusionExplorer

RECIPE = ["solver=diffusion/debug"]
LEARNING_RATES = [1e-3, 3e-4]


@DiffusionExplorer
def explorer(launcher):
    for lr in LEARNING_RATES:
        launcher([*RECIPE, f"optim.lr={lr:g}"])
