"""The table `dora grid classifier.*` shows: what a researcher reads first for each fold."""
from __future__ import annotations

import treetable as tt
from dora import Explorer

from ...kfold import best_valid


class ClassifierExplorer(Explorer):
    def get_grid_metrics(self) -> list:
        return [tt.group("valid", [
            tt.leaf("epoch"),
            tt.leaf("best_acc", ".2%"),
            tt.leaf("acc", ".2%"),
            tt.leaf("macro_f1", ".3f"),
            tt.leaf("loss", ".4f"),
        ], align=">")]

    def process_history(self, history: list[dict]) -> dict:
        valid = [epoch["valid"] for epoch in history if "valid" in epoch]
        if not valid:
            return {"valid": {"epoch": len(history)}}
        last = valid[-1]
        return {"valid": {"epoch": len(history), "best_acc": best_valid(history),
                          "acc": last["accuracy"], "macro_f1": last["macro_f1"],
                          "loss": last["loss"]}}
