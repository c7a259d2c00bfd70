"""Classification metrics from a confusion matrix, and a confusion-matrix picture.

Everything derives from the (true, predicted) count matrix, so metrics accumulated over
batches (and summed across DDP ranks) are exact, not averages of per-batch values.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """counts[true, predicted] as int64."""
    index = targets.long() * num_classes + predictions.long()
    counts = torch.bincount(index.flatten().cpu(), minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def accuracy(matrix: torch.Tensor) -> float:
    total = int(matrix.sum())
    return float(matrix.diag().sum()) / total if total else 0.0


def macro_f1(matrix: torch.Tensor) -> float:
    """Mean over classes present in targets or predictions of 2TP / (2TP + FP + FN)."""
    matrix = matrix.double()
    true_positive = matrix.diag()
    denominator = matrix.sum(0) + matrix.sum(1)  # = 2TP + FP + FN
    present = denominator > 0
    if not present.any():
        return 0.0
    return float((2 * true_positive[present] / denominator[present]).mean())


def render_confusion_matrix(matrix: torch.Tensor, class_names: list[str],
                            cell: int = 36) -> Image.Image:
    """A readable PNG-ready image: rows are true classes, columns predictions, each cell shaded
    by its share of the row and labelled with its count."""
    counts = matrix.cpu().numpy()
    size = len(class_names)
    margin = 8 + 7 * max(len(name) for name in class_names)
    image = Image.new("RGB", (margin + size * cell + 8, margin + size * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    for row in range(size):
        draw.text((4, margin + row * cell + cell // 3), class_names[row], fill="black")
        draw.text((margin + row * cell + 2, 4), class_names[row][:cell // 7], fill="black")
        for column in range(size):
            shade = int(255 * (1 - share[row, column]))
            box = (margin + column * cell, margin + row * cell,
                   margin + (column + 1) * cell - 1, margin + (row + 1) * cell - 1)
            draw.rectangle(box, fill=(shade, shade, 255), outline="grey")
            text_colour = "white" if share[row, column] > 0.5 else "black"
            draw.text((box[0] + 4, box[1] + cell // 3), str(int(counts[row, column])),
                      fill=text_colour)
    return image
