"""Task metrics computed with numpy alone (the edge install has no scikit-learn)."""

from __future__ import annotations

import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, ties counted half (the Mann-Whitney U statistic).

    Written here rather than taken from scikit-learn so that evaluating a bundle
    on an edge box needs only numpy; it matches ``sklearn.metrics.roc_auc_score``.

    Args:
        labels: 0/1 (or bool) ground truth, any shape.
        scores: higher means more likely positive, same shape as ``labels``.

    Returns:
        The AUROC in 0..1.

    Raises:
        ValueError: when the shapes differ or only one class is present.

    Example:
        >>> auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.75
    """
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in size: {labels.size} vs {scores.size}")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes, got {n_pos} positives and {n_neg} negatives")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average ranks over runs of equal scores so that ties count one half.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], sorted_scores.size]
    run_ranks = (starts + ends + 1) / 2.0  # 1-based mean rank of each run
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def segmentation_aurocs(masks: np.ndarray, heatmaps: np.ndarray) -> dict[str, float]:
    """Image-level (max of the heatmap) and pixel-level AUROC of a set of images.

    Args:
        masks: (N, H, W) ground truth, non-zero where a defect is.
        heatmaps: (N, H, W) defect probabilities.

    Returns:
        ``{"image_auroc": ..., "pixel_auroc": ...}``.
    """
    masks = np.asarray(masks) > 0
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if masks.shape != heatmaps.shape or masks.ndim != 3:
        raise ValueError(f"expected masks and heatmaps of the same (N, H, W) shape, "
                         f"got {masks.shape} and {heatmaps.shape}")
    image_labels = masks.reshape(len(masks), -1).any(axis=1)
    image_scores = heatmaps.reshape(len(heatmaps), -1).max(axis=1)
    return {"image_auroc": auroc(image_labels, image_scores), "pixel_auroc": auroc(masks, heatmaps)}
