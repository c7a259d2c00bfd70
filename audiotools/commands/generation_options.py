"""What `audiotools generate`, `continue` and `inpaint` share: their options (model,
conditions, sampling settings, seed, output), loading the model with its family checked,
turning the options into the pipeline's arguments, and refusing to overwrite outputs.

Sampling options belong to a family; one that the loaded family does not take is an error, not
ignored, and one left out is passed as None so the pipeline takes the XP's `generate:` value.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .arguments import MODEL_SOURCES, add_device_argument, finite_float

# The sampling options each generative family's pipeline takes (argparse dests).
SAMPLING: dict[str, tuple[str, ...]] = {
    "diffusion": ("steps", "sampler", "cfg_scale", "max_duration"),
    "musicgen": ("temperature", "top_k", "top_p", "cfg_scale", "max_duration"),
}


# argparse type and help of each sampling option.
_SAMPLING_HELP: dict[str, tuple[Callable[[str], Any], str]] = {
    "steps": (int, "diffusion: sampler steps"),
    "sampler": (str, "diffusion: ddim, euler, heun, dpmpp_2m or dpmpp_2m_sde"),
    "cfg_scale": (finite_float, "classifier-free guidance scale (1: none)"),
    "temperature": (finite_float, "musicgen: softmax temperature (0: greedy)"),
    "top_k": (int, "musicgen: sample among the K likeliest tokens (0: all)"),
    "top_p": (finite_float, "musicgen: nucleus sampling mass (1: off)"),
    "max_duration": (finite_float, "the longest clip it makes, in seconds (default: the "
                                   "model's, 30 for MusicGen, 300 for diffusion; the time "
                                   "grows with the square of the length)"),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def add_model_argument(parser: argparse.ArgumentParser, musicgen: bool = True) -> None:
    """The model positional; `musicgen=False` for a command only diffusion models serve."""
    parser.add_argument("model", help=f"{MODEL_SOURCES}, or an AudioCraft MusicGen folder (a "
                                      "diffusion or musicgen model)" if musicgen else
                                      f"{MODEL_SOURCES} (a diffusion model)")


def add_options(parser: argparse.ArgumentParser, out_help: str,
                families: Sequence[str] = tuple(SAMPLING)) -> None:
    """Conditions, the sampling settings of `families`, seed, device and output, after the
    positionals."""
    conditions = parser.add_argument_group("conditions (a conditioner not given takes its "
                                           "default, else its null condition)")
    conditions.add_argument("--prompt", metavar="TEXT",
                            help="the value of the model's text conditioner")
    conditions.add_argument("--condition", action="append", default=[], metavar="NAME=VALUE",
                            help="a conditioner's value (repeatable), converted by its type: "
                                 "number, int, one of its options, text, or an audio file path")
    conditions.add_argument("--negative-prompt", metavar="TEXT",
                            help="the text conditioner's value on the unconditional branch of "
                                 "guidance (needs a cfg scale other than 1)")
    sampling = parser.add_argument_group("sampling (left out: the XP's generate: settings)")
    taken = {dest for family in families for dest in SAMPLING[family]}
    for dest, (kind, text) in _SAMPLING_HELP.items():
        if dest in taken:
            sampling.add_argument(_flag(dest), type=kind, help=text)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same "
                                                            "arguments give the same audio")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_device_argument(parser)


@dataclass
class Generation:
    """A loaded pipeline and the arguments the options give its calls."""

    pipeline: Any
    family: str
    infos: list  # list[ConditionerInfo]
    values: dict[str, Any]  # the conditions given on the command line
    sampling: dict[str, Any]  # keyword settings, negative= included

    def conditions(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """A value for every conditioner: `overrides`, then the command line's, then its
        default, else None (the null condition)."""
        from ..inference.conditions import complete
        return complete({**self.values, **(overrides or {})}, self.infos)

    def call(self, method: str, *args: Any, label: str, **kwargs: Any) -> tuple[Any, int]:
        """pipeline.<method>(*args, **kwargs, **sampling) with a progress bar; the pipelines'
        ValueErrors (settings out of range) become ConfigErrors."""
        from .progress import progress
        with progress(label) as callback:
            try:
                return getattr(self.pipeline, method)(*args, **kwargs, **self.sampling,
                                                      callback=callback)
            except ValueError as error:
                raise ConfigError(str(error)) from None


def _family_name(families: Sequence[str]) -> str:
    return " or ".join(families)


def prepare(args: argparse.Namespace, command: str,
            families: Sequence[str] = tuple(SAMPLING)) -> Generation:
    """The pipeline of args.model (a family in `families`) and the arguments of its calls."""
    from ..inference.conditions import describe_conditioners, parse_assignments, text_conditioner
    from ..io.loading import load_model
    loaded = load_model(args.model, args.device)
    family = loaded.family.name
    if family not in families:
        why = ("inpainting needs a diffusion model" if tuple(families) == ("diffusion",)
               else f"audiotools {command} generates with a {_family_name(families)} model")
        raise ConfigError(f"{why}; {args.model} is of the {family} family.")
    taken = SAMPLING[family]
    wrong = [_flag(dest) for dest in sorted({d for f in SAMPLING.values() for d in f})
             if dest not in taken and getattr(args, dest, None) is not None]
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} does not apply to a {family} model ({args.model}); "
                          f"its sampling options: {', '.join(map(_flag, taken))}.")
    pipeline = loaded.family.pipeline_class().from_model(loaded.model, loaded.export)
    infos = describe_conditioners(pipeline.conditioners)
    values = parse_assignments(args.condition, infos)
    sampling: dict[str, Any] = {dest: getattr(args, dest) for dest in taken}
    if args.prompt is not None or args.negative_prompt is not None:
        text = text_conditioner(infos, "--prompt" if args.prompt is not None
                                else "--negative-prompt")
        if args.prompt is not None:
            if text in values:
                raise ConfigError(f"--prompt and --condition {text}=... both set {text!r}; "
                                  "give one.")
            values[text] = args.prompt
        if args.negative_prompt is not None:
            scale = args.cfg_scale if args.cfg_scale is not None else pipeline.defaults.get(
                "cfg_scale", 1.0)
            if float(scale) == 1.0:
                raise ConfigError("--negative-prompt steers guidance, and the cfg scale is 1 "
                                  "(no guidance): give --cfg-scale above 1.")
            sampling["negative"] = {text: args.negative_prompt}
    return Generation(pipeline, family, infos, values, sampling)


def check_outputs(paths: Sequence[Path], force: bool, source: Path | None = None,
                  name: str = "--out") -> None:
    """Before any work: each path writable as audio, and none there unless --force (which
    may replace the input file `source` too: the refusal says when a path is it). `name`:
    the argument the paths come from, which the messages give."""
    from ..data.audio import WRITE_FORMATS
    from ..io.atomic import file_in_the_way
    for path in paths:
        if path.is_dir():
            raise ConfigError(f"{name} {path} is a folder; give a file name.")
        if path.suffix.lower() not in WRITE_FORMATS:
            raise ConfigError(f"{name} {path}: cannot write {path.suffix or 'no extension'}; "
                              f"use one of {', '.join(sorted(WRITE_FORMATS))}.")
        blocking = file_in_the_way(path)
        if blocking is not None:
            raise ConfigError(f"{name} {path}: cannot write it, {blocking} is a file.")
    existing = [str(path) for path in paths if path.exists()]
    if existing and not force:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more"
                                           if len(existing) > 5 else "")
        own = source is not None and any(Path(p).resolve() == source.resolve() for p in existing)
        raise ConfigError(f"{shown} exist{'s' if len(existing) == 1 else ''}"
                          f"{' (it is the input file)' if own else ''}; choose another {name} "
                          "or pass --force to overwrite.")


def write(path: Path, audio: Any, rate: int, started: float, force: bool) -> None:
    """Write the clip and say so: path, duration, seconds taken. Without `force`, a file
    another process wrote there since `check_outputs` is refused, not replaced."""
    from ..data.audio import audio_write
    audio_write(path, audio, rate, exclusive=not force)
    print(f"{path}\t{audio.shape[-1] / rate:.2f} s\tin {time.perf_counter() - started:.2f} s")
    sys.stdout.flush()
