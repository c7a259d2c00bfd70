"""A Migration written as Hydra files: `solver/autoencoder/<stem>.yaml` (the recipe),
`model/autoencoder/<stem>.yaml`, `dset/<stem>.yaml`, plus the manifests the dset file reads.

`migrate` never overwrites a config file without `force`. `audiotools train` names its recipe
after a hash of the settings written, DataLoader workers aside (`sat_<name>_<hash>`), or finds
the recipe of these settings it wrote before: the same command finds the same recipe and so
the same XP, on any machine, which then resumes; a changed option gives a new recipe and XP.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..data.manifest import write_manifest
from ..environment import CONFIG_DIR, config_dirs, resolve_path
from ..errors import ConfigError
from ..io.atomic import write_text_atomic
from .migration import Migration
from .options import DEFAULT_MANIFEST_DIR


@dataclass
class Written:
    stem: str
    files: dict[str, Path]  # solver, model, dset, and manifests by split
    command: str            # the dora command that runs the recipe


def _dump(content: dict) -> str:
    return yaml.safe_dump(content, sort_keys=False, default_flow_style=None, width=100)


def _comment(lines: list[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def _manifest_ref(manifest_dir: str, stem: str, split: str) -> str:
    """How the dset file names a manifest: under a //prefix as given, else absolute."""
    if manifest_dir.startswith("//"):
        return f"{manifest_dir.rstrip('/')}/{stem}/{split}.jsonl"
    return str(resolve_path(manifest_dir) / stem / f"{split}.jsonl")


def render(migration: Migration, stem: str, manifest_dir: str) -> dict[str, str]:
    """The text of each file: solver, model, dset, and `manifest:<split>`."""
    dataset = json.loads(json.dumps(migration.dataset))
    for split in ("train", "valid", "evaluate", "generate"):
        section = dataset[split]
        if "manifest" in section:
            section["manifest"] = _manifest_ref(manifest_dir, stem, section["manifest"])
    origin = ["Converted from stable-audio-tools by audiotools.sat "
              f"({', '.join(migration.sources)})."]
    family = migration.family
    recipe = {"defaults": [f"/solver/{family}/default", {_model_default(family): stem},
                           {"override /dset": stem}, "_self_"],
              "solver": family, **migration.solver}
    texts = {
        "solver": "# @package _global_\n" + _comment(
            [*origin, f"Run: dora run solver={family}/{stem}", "", *migration.notes.lines()])
        + _dump(recipe),
        "model": "# @package model\n" + _comment(origin) + _dump(migration.model),
        "dset": "# @package dataset\n" + _comment(origin) + _dump(dataset)}
    for split, entries in migration.manifests.items():
        texts[f"manifest:{split}"] = "".join(json.dumps(e, ensure_ascii=False) + "\n"
                                             for e in entries)
    return texts


def _model_default(family: str) -> str:
    """The defaults entry of the model file: an override where the family's default recipe
    already picks a model file (the autoencoder's), else a plain entry (diffusion recipes
    write their model inline or pick a network file)."""
    default = (CONFIG_DIR / "solver" / family / "default.yaml").read_text(encoding="utf-8")
    group = f"/model/{family}"
    return f"override {group}" if f"- {group}:" in default else group


# The dset file's DataLoader workers: a machine's setting (capped at its CPUs, which the
# recipe's notes then say), outside the XP signature, so outside the recipe's name too.
_WORKERS = re.compile(r"^num_workers: .*$", re.MULTILINE)


def _digest(texts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(texts, sort_keys=True).encode()).hexdigest()[:8]


def _settings(text: str) -> str:
    """A file's keys and values: its comments (the notes) and num_workers aside."""
    kept = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    return _WORKERS.sub("num_workers: null", kept)


def train_stem(migration: Migration, name: str, config_dir: Path, manifest_dir: str) -> str:
    """`audiotools train`'s recipe name: a recipe of `config_dir` named `sat_<name>_*` that
    holds these settings (its comments, the notes, and num_workers aside) and whose manifests
    list these files, if there is one, so the same command finds the same XP again, whatever
    machine or audiotools version wrote the recipe; else `sat_<name>_<8 hex digits of the
    settings and manifests>`. (The manifests were not compared: data changed file for file
    found the old recipe, whose XP would then have trained on the new files.)"""
    prefix = f"sat_{slug(name)}_"
    for path in sorted((config_dir / "solver" / migration.family).glob(f"{prefix}*.yaml")):
        texts = render(migration, path.stem, manifest_dir)
        files = [(existing, texts[kind]) for kind, existing in
                 config_paths(config_dir, migration.family, path.stem).items()]
        manifests = [(resolve_path(_manifest_ref(manifest_dir, path.stem, split)),
                      texts[f"manifest:{split}"]) for split in migration.manifests]
        if all(existing.is_file() and _settings(_read(existing)) == _settings(text)
               for existing, text in files) \
                and all(_holds(manifest, text) for manifest, text in manifests):
            return path.stem
    texts = render(migration, "STEM", manifest_dir)
    return prefix + _digest({kind: _settings(text) for kind, text in texts.items()})


def slug(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    if not text:
        raise ConfigError(f"name={name!r}: use letters, digits and underscores.")
    return text


def config_paths(config_dir: Path, family: str, stem: str) -> dict[str, Path]:
    return {"solver": config_dir / "solver" / family / f"{stem}.yaml",
            "model": config_dir / "model" / family / f"{stem}.yaml",
            "dset": config_dir / "dset" / f"{stem}.yaml"}


def _holds(path: Path, text: str) -> bool:
    """Whether the file holds exactly this text (a binary file does not)."""
    return _read(path) == text


def dora_command(config_dir: Path, family: str, stem: str,
                 searched: list[Path] | None = None) -> str:
    """The command that runs the recipe (with AUDIOTOOLS_CONFIG_PATH when Hydra needs it):
    `searched`, the config trees the user's shell has (default: this process's)."""
    command = f"dora run solver={family}/{stem}"
    if config_dir.resolve() not in [path.resolve() for path in searched or config_dirs()]:
        command = f"AUDIOTOOLS_CONFIG_PATH=file://{config_dir.resolve()} {command}"
    return command


def write(migration: Migration, config_dir: Path, stem: str,
          manifest_dir: str = DEFAULT_MANIFEST_DIR, force: bool = False, reuse: bool = False,
          texts: dict[str, str] | None = None) -> Written:
    """Write the recipe, model and dset files and the manifests. An existing config file is
    an error unless `force` (overwrite) or, with `reuse`, it holds exactly this content; an
    existing manifest is one unless `force` or it holds exactly these entries (manifests of
    one --name are shared by every config dir, and another recipe may read them)."""
    texts = texts or render(migration, stem, manifest_dir)
    check_recipe(migration, manifest_dir)
    paths = config_paths(config_dir, migration.family, stem)
    manifests = {split: resolve_path(_manifest_ref(manifest_dir, stem, split))
                 for split in migration.manifests}
    # Reused: what exists holds these settings (written on a machine of other CPUs maybe).
    kept = {kind for kind, path in paths.items() if reuse and path.exists()
            and _settings(_read(path)) == _settings(texts[kind])}
    clashing = [str(path) for kind, path in paths.items() if path.exists() and kind not in kept]
    clashing += [str(path) for split, path in manifests.items() if path.exists()
                 and not _holds(path, texts[f"manifest:{split}"])]
    if clashing and not force:
        fix = (" with other settings; delete them to convert again, or choose another --name"
               if reuse else "; pass --force to overwrite, or choose another --name")
        raise ConfigError(f"{', '.join(clashing)} already exist(s){fix}.")
    files = dict(paths)
    for split, entries in migration.manifests.items():
        files[f"manifest:{split}"] = write_manifest(entries, manifests[split])
    for kind, path in paths.items():
        if kind not in kept:
            write_text_atomic(path, texts[kind])
    return Written(stem, files, dora_command(config_dir, migration.family, stem))


def check_recipe(migration: Migration, manifest_dir: str) -> None:
    """The recipe composes and validates as `dora run` will read it, checked in a scratch
    config tree before anything is written: a value SAT takes that audiotools' schema refuses
    would otherwise leave files that fail only at `dora run`. Under a name of its own: under
    the recipe's, a recipe already in the project's tree (the same `audiotools train` run
    again) would shadow the scratch one, and the check refused the run that should resume."""
    from ..train import main
    stem = f"sat_recipe_check_{uuid.uuid4().hex[:12]}"
    texts = render(migration, stem, manifest_dir)
    with tempfile.TemporaryDirectory() as folder, _config_path(Path(folder)):
        for kind, path in config_paths(Path(folder), migration.family, stem).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(texts[kind], encoding="utf-8")
        try:
            main.get_xp([f"solver={migration.family}/{stem}"])
        except ConfigError as error:
            raise ConfigError(f"the converted recipe does not validate, so nothing was "
                              f"written: {error}") from None


@contextlib.contextmanager
def _config_path(folder: Path) -> Iterator[None]:
    """AUDIOTOOLS_CONFIG_PATH naming `folder` for the block, then as it was."""
    before = os.environ.get("AUDIOTOOLS_CONFIG_PATH")
    os.environ["AUDIOTOOLS_CONFIG_PATH"] = f"file://{folder}"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AUDIOTOOLS_CONFIG_PATH")
        else:
            os.environ["AUDIOTOOLS_CONFIG_PATH"] = before


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""
