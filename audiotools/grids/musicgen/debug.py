"""`dora grid musicgen.debug`: the debug recipe (a tiny delay-pattern LM on the tokens of a
discrete codec, two epochs with evaluate and generate at the end; seconds on a CPU) at two
learning rates. The recipe takes its codec from the command line, and a grid has none: name it
with AUDIOTOOLS_MUSICGEN_CODEC (an RVQ/FSQ autoencoder export, SIG, //sig/SIG or
//recipe/autoencoder/NAME of a trained XP, as `codec.source=` takes it; 2 codebooks of 16 codes
for the debug model), in the shell that runs `dora grid` (it becomes each XP's
`codec.source`, so another codec is another set of XPs):

    AUDIOTOOLS_MUSICGEN_CODEC=rvq.safetensors dora grid musicgen.debug

Without SLURM, `audiotools grid musicgen.debug` runs the same XPs here."""
import os

from ...distributed import grid_only_looks
from ...errors import AudiotoolsError, ConfigError
from ._explorers import MusicGenExplorer

CODEC_VARIABLE = "AUDIOTOOLS_MUSICGEN_CODEC"
RECIPE = ["solver=musicgen/debug"]
LEARNING_RATES = [1e-3, 3e-4]


def codec() -> str:
    """The codec of the grid's XPs: AUDIOTOOLS_MUSICGEN_CODEC (an absolute path when it is a
    file here, so the jobs find it whatever their working directory)."""
    source = os.environ.get(CODEC_VARIABLE)
    if not source:
        raise ConfigError(f"grid musicgen.debug needs a discrete codec: set {CODEC_VARIABLE} "
                          f"(an RVQ/FSQ autoencoder export, SIG or //recipe/autoencoder/NAME), "
                          f"e.g. `{CODEC_VARIABLE}=rvq.safetensors dora grid musicgen.debug`.")
    if not source.startswith("//") and os.path.exists(source):
        source = os.path.abspath(source)
    if not grid_only_looks():  # checked here, not by each job after it was queued
        _check_codec(source)
    return source


def _check_codec(source: str) -> None:
    from ...io.loading import locate
    try:
        kind, path = locate(source)
    except AudiotoolsError as error:
        raise ConfigError(f"{CODEC_VARIABLE}={source}: {error}") from None
    if kind == "foreign" and not path.exists():
        raise ConfigError(f"{CODEC_VARIABLE}={source}: no such file; give an RVQ/FSQ "
                          "autoencoder export, SIG, //sig/SIG or //recipe/autoencoder/NAME.")


@MusicGenExplorer
def explorer(launcher):
    source = codec()
    for lr in LEARNING_RATES:
        launcher([*RECIPE, f"codec.source={source}", f"optim.lr={lr:g}"])
