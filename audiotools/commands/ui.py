"""`audiotools ui MODEL... [--port P] [--host H] [--dora-dir D]`: a web page to use trained
models (a tab per model, what its family does) and to browse the experiments of a dora dir."""
from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .arguments import add_device_argument, finite_float

NAME = "ui"
HELP = ("Serve a web page with a tab per model (generate, continue, inpaint, reconstruct, "
        "classify) and an experiments tab.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*",
                        help="exported .safetensors, XP signatures or //sig/SIG, XP folders, "
                             "//recipe/... or other tools' checkpoints")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for others)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--dora-dir", type=Path,
                        help="dora dir of the experiments tab (default: the configured one, "
                             "AUDIOTOOLS_DORA_DIR or ./outputs)")
    parser.add_argument("--no-experiments", action="store_true",
                        help="leave out the experiments tab")
    parser.add_argument("--max-duration", type=finite_float, default=60.0,
                        help="longest audio, in seconds, one request makes or takes "
                             "(default 60)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..environment import dora_dir
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port={args.port}: give a port between 1 and 65535.")
    if args.max_duration <= 0:
        raise ConfigError(f"--max-duration={args.max_duration}: give seconds > 0.")
    if not args.models and args.no_experiments:
        raise ConfigError("Nothing to show: give a model, or leave out --no-experiments.")
    folder = None if args.no_experiments else (args.dora_dir or dora_dir())
    if args.dora_dir is not None and not args.dora_dir.is_dir():
        raise ConfigError(f"--dora-dir={args.dora_dir}: no such folder.")
    try:
        from ..ui.app import build_app, check_address, launch, load_entries
        from ..ui.context import UIContext
    except ModuleNotFoundError as missing:
        raise ConfigError(f"The web UI needs {missing.name}, which is not installed: "
                          'pip install -e ".[ui]"') from None
    check_address(args.host, args.port)
    entries = load_entries(args.models, args.device)
    context = UIContext(max_duration=args.max_duration)
    try:
        app = build_app(entries, folder, context)
        url = launch(app, args.host, args.port, args.max_duration)
        print(f"Serving {len(entries)} model(s) on {url} (Ctrl-C stops); results go to "
              f"{context.outputs.path}, kept when it stops (removed if none was made).",
              flush=True)
        with _stopped_by_sigterm():
            app.block_thread()
    finally:
        context.outputs.remove_if_empty()
    return 0


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, a service manager) stops the server as Ctrl-C does, so that an
    unused results folder is removed either way."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
