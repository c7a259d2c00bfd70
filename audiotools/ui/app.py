"""The page of `audiotools ui`: a header naming the loaded models, a tab per model (built by its
family's `ui_tab`, audiotools.families) and the experiments tab over a dora dir."""
from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Set before Gradio is imported: the page must not phone home (these machines have no
# network, and a tool should not report its users anyway).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..errors import ConfigError  # noqa: E402
from ..families import Family  # noqa: E402
from .components import upload_limit  # noqa: E402
from .context import UIContext  # noqa: E402
from .experiments_tab import experiments_tab  # noqa: E402

TITLE = "audiotools"
# System fonts only: the default theme's Google fonts cannot load offline.
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="sky", neutral_hue="slate",
                       font=["Inter", "ui-sans-serif", "system-ui", "sans-serif"],
                       font_mono=["ui-monospace", "SFMono-Regular", "monospace"])
CSS = """
.gradio-container { max-width: 1280px !important; margin: auto; }
#header h1 { margin-bottom: 0; }
#header p { color: var(--body-text-color-subdued); margin-top: 4px; }
.result-info { font-size: 0.9em; color: var(--body-text-color-subdued); }
"""


@dataclass
class LoadedEntry:
    """One model of the page: the name its tab and API endpoints take, its family and
    pipeline."""

    name: str
    source: str
    family: Family
    pipeline: Any


def model_name(source: str, taken: Sequence[str]) -> str:
    """A short name for a model source (a file's stem, an XP's signature), unique on the page
    and usable in an API endpoint name."""
    text = str(source).rstrip("/")
    stem = Path(text).stem if "/" in text or "." in Path(text).name else text
    if stem == "checkpoint":  # an XP's checkpoint.th: name it by its folder
        stem = Path(text).parent.name
    base = re.sub(r"\W+", "_", stem).strip("_") or "model"
    name, index = base, 2
    while name in taken:
        name, index = f"{base}_{index}", index + 1
    return name


def load_entries(sources: Sequence[str | Path], device: str = "cpu") -> list[LoadedEntry]:
    """Every model of the page loaded (each fault found) before the server starts."""
    from ..io.loading import load_model
    entries: list[LoadedEntry] = []
    for source in sources:
        loaded = load_model(source, device)
        loaded.family.ui_tab_builder()  # a family without a tab fails here, not in the page
        pipeline = loaded.family.pipeline_class().from_model(loaded.model, loaded.export)
        name = model_name(str(source), [entry.name for entry in entries])
        entries.append(LoadedEntry(name, str(source), loaded.family, pipeline))
    return entries


def _parameters(pipeline: Any) -> str:
    count = sum(p.numel() for p in pipeline.model.parameters())
    return f"{count / 1e6:.1f} M" if count >= 1e5 else f"{count:,}"


def header(entries: Sequence[LoadedEntry], dora_dir: Path | None) -> str:
    lines = [f"# {TITLE}"]
    if entries:
        lines.append(" · ".join(f"**{entry.name}** ({entry.family.name}, "
                                f"{_parameters(entry.pipeline)} parameters)"
                                for entry in entries))
    elif dora_dir is not None:
        lines.append("No model loaded: the experiments of the dora dir.")
    return "\n\n".join(lines)


def build_app(entries: Sequence[LoadedEntry], dora_dir: Path | None,
              context: UIContext | None = None) -> gr.Blocks:
    """The whole page; `dora_dir` None leaves out the experiments tab."""
    context = context or UIContext()
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as app:
        gr.Markdown(header(entries, dora_dir), elem_id="header")
        with gr.Tabs():
            for entry in entries:
                label = (entry.name if entry.name == entry.family.name
                         else f"{entry.name} · {entry.family.name}")
                with gr.Tab(label, elem_id=f"tab-{entry.name}"):
                    entry.family.ui_tab_builder()(entry.pipeline, context, entry.name)
            if dora_dir is not None:
                with gr.Tab("Experiments", elem_id="tab-experiments"):
                    experiments_tab(app, dora_dir)
    return app


def _bracketless(host: str) -> str:
    """`[::1]` (as a URL writes it) is the address ::1."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def check_address(host: str, port: int) -> None:
    """Refuse, before any model is loaded, a --host this machine cannot listen on or a
    --port already taken: Gradio would say so only after the loading, blaming the port."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(_bracketless(host), port,
                                                         type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"--host={host}: not an address or a name that resolves ({reason}); "
                          "give one of this machine's, e.g. 127.0.0.1 or 0.0.0.0.") from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as error:
            raise _address_error(host, port, error) from None


def _address_error(host: str, port: int, error: OSError) -> ConfigError:
    if error.errno == errno.EADDRINUSE:
        return ConfigError(f"--port={port}: already in use on {host}; give another --port.")
    if error.errno == errno.EACCES:
        return ConfigError(f"--port={port}: not allowed for this user ({error.strerror}); "
                           "give a port above 1023.")
    return ConfigError(f"--host={host}: cannot listen there ({error.strerror}); give an "
                       "address of this machine, e.g. 127.0.0.1 or 0.0.0.0.")


def launch(app: gr.Blocks, host: str, port: int, max_seconds: float) -> str:
    """Start serving the page (in the background: `app.block_thread()` waits) and return its
    address. Uploads over what `max_seconds` of audio can weigh are refused as they come in."""
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                               theme=THEME, css=CSS, ssr_mode=False, show_error=False,
                               footer_links=["api"], quiet=True,
                               max_file_size=upload_limit(max_seconds))
    except OSError:  # taken since check_address (Gradio's message names a port range)
        raise ConfigError(f"--port={port}: already in use on {host}; give another "
                          "--port.") from None
    return url
