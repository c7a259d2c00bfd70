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
        row = {"epoch": len(history), "best_acc": best_valid(history)}
        # A metric the valid stage did not log (a recipe of other metrics) is left blank.
        row.update({column: last[metric] for column, metric in (
            ("acc", "accuracy"), ("macro_f1", "macro_f1"), ("loss", "loss")) if metric in last})
        return {"valid": row}
