"""What every tab builder gets besides its model: where results go and the page's limits."""
from __future__ import annotations

from dataclasses import dataclass, field

from .components import OutputFolder


@dataclass
class UIContext:
    # The longest audio (seconds) the page generates in one request (`audiotools ui
    # --max-duration`); an LM's own max_duration applies when it is shorter.
    max_duration: float = 60.0
    outputs: OutputFolder = field(default_factory=OutputFolder)
