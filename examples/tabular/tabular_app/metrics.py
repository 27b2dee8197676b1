"""Classification metrics computed from labels and predicted probabilities."""

import numpy as np


def accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Share of rows whose probability is on the right side of 0.5."""
    return float(np.mean((probabilities >= 0.5) == (labels >= 0.5))) if len(labels) else float("nan")


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when only one class is present."""
    positives = labels >= 0.5
    count_positive, count_negative = int(positives.sum()), int((~positives).sum())
    if count_positive == 0 or count_negative == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    start = 0
    while start < len(sorted_scores):
        end = start
        while end + 1 < len(sorted_scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = ranks[positives].sum()
    return float((rank_sum - count_positive * (count_positive + 1) / 2) / (count_positive * count_negative))
