"""Classification metrics."""
import numpy as np

__all__ = ["accuracy", "confusion_matrix", "per_class_accuracy", "format_confusion_matrix"]


def accuracy(y_true, y_pred):
    """Fraction of equal labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"accuracy: label shapes differ: {y_true.shape} and {y_pred.shape}")
    return float(np.mean(y_true == y_pred)) if y_true.size else 0.0


def confusion_matrix(y_true, y_pred, num_classes=None):
    """counts[i, j] = how many samples of class i were predicted as class j."""
    y_true = np.asarray(y_true).astype(np.intp)
    y_pred = np.asarray(y_pred).astype(np.intp)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"confusion_matrix: expected two label vectors of one length, got "
                         f"{y_true.shape} and {y_pred.shape}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or
                        max(y_true.max(), y_pred.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: labels must be in [0, {num_classes})")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def per_class_accuracy(matrix):
    """The diagonal of a confusion matrix over its row sums (NaN for a class never seen)."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def format_confusion_matrix(matrix, labels=None):
    """A printable table: true classes down, predictions across, per-class accuracy at the right."""
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    labels = [str(i) for i in range(n)] if labels is None else [str(v) for v in labels]
    width = max(5, len(str(matrix.max())) + 1, max(len(s) for s in labels) + 1)
    acc = per_class_accuracy(matrix)
    head = "true\\pred".ljust(10) + "".join(s.rjust(width) for s in labels) + "   accuracy"
    rows = [head]
    for i in range(n):
        rows.append(labels[i].ljust(10) + "".join(str(v).rjust(width) for v in matrix[i])
                    + f"   {100 * acc[i]:7.2f}%")
    return "\n".join(rows)
