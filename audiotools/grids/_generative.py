"""The table `dora grid diffusion.*` / `musicgen.*` shows, from each XP's history.json: epochs
done, the train and valid loss of the last epoch, the best valid loss, and the generation
report's Fréchet distance (evaluate: to the evaluate split's real audio, beside the valid
split's real audio, what a perfect model scores)."""
from __future__ import annotations

from typing import ClassVar

import treetable as tt
from dora import Explorer


class GenerativeExplorer(Explorer):
    # The valid metric the family's best state follows (lower is better).
    metric: ClassVar[str] = "loss"

    def get_grid_metrics(self) -> list:
        return [
            tt.group("train", [tt.leaf("epoch"), tt.leaf(self.metric, ".4f")], align=">"),
            tt.group("valid", [tt.leaf("best", ".4f"), tt.leaf(self.metric, ".4f")],
                     align=">"),
            tt.group("evaluate", [tt.leaf("fd", ".1f"), tt.leaf("fd_real", ".1f")],
                     align=">"),
        ]

    def process_history(self, history: list[dict]) -> dict:
        train = [epoch["train"] for epoch in history if "train" in epoch]
        valid = [epoch["valid"][self.metric] for epoch in history
                 if self.metric in epoch.get("valid", {})]
        evaluate = [epoch["evaluate"] for epoch in history if "fd" in epoch.get("evaluate", {})]
        row: dict = {"train": {"epoch": len(history)}}
        if train:
            row["train"][self.metric] = train[-1].get(self.metric)
        if valid:
            row["valid"] = {"best": min(valid), self.metric: valid[-1]}
        if evaluate:
            row["evaluate"] = {"fd": evaluate[-1]["fd"],
                               "fd_real": evaluate[-1].get("fd_heldout_real")}
        return row
