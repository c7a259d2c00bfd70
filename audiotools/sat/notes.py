"""What a conversion from stable-audio-tools could not carry over exactly.

Every SAT setting either maps to an audiotools key, or lands here: `unsupported` lists what
audiotools does not do at all (the run differs there), `differences` what it does another way.
`migrate` prints both and writes them at the top of the recipe, so nothing is dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Notes:
    unsupported: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def unsupported_if(self, condition: object, message: str) -> None:
        if condition:
            self.unsupported.append(message)

    def difference(self, message: str) -> None:
        self.differences.append(message)

    def lines(self) -> list[str]:
        """Both lists as text lines, for the console and the recipe header."""
        lines = []
        for title, items in (("Not supported (not reproduced)", self.unsupported),
                             ("Differences", self.differences)):
            if items:
                lines.append(f"{title}:")
                lines += [f"  - {item}" for item in items]
        return lines
