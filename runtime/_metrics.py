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


#: the radii (source pixels) of the hit rates :func:`keypoint_metrics` reports
HIT_RADII = (1, 2, 5)


def keypoint_metrics(predicted: np.ndarray, truth: np.ndarray, names: tuple[str, ...], *,
                     predicted_angle: np.ndarray | None = None, true_angle: np.ndarray | None = None,
                     symmetry: np.ndarray | None = None) -> dict[str, float]:
    """Localisation errors of named keypoints, in source pixels.

    The error of a keypoint is the Euclidean distance between the predicted and
    the true point in the source image's pixels (continuous coordinates). Over
    every keypoint of every image: ``mae`` is the mean error, ``rmse`` the root
    of the mean squared error, ``hit@Npx`` the fraction of keypoints with an
    error of at most N pixels (N in :data:`HIT_RADII`); ``mae_<name>`` is the
    mean error of one keypoint. With angles, ``angle_error`` is the mean
    absolute difference in degrees, the smallest over the outline's symmetry
    (an outline that looks the same after 360/n degrees has symmetry n).

    Args:
        predicted: (N, K, 2) predicted x, y.
        truth: (N, K, 2) true x, y.
        names: the K keypoints' names.
        predicted_angle: (N,) predicted angles in degrees, or None.
        true_angle: (N,) true angles in degrees (needed with ``predicted_angle``).
        symmetry: (N,) rotational symmetry order of each image's outline (None: 1).

    Returns:
        ``{"mae", "rmse", "hit@1px", "hit@2px", "hit@5px", "mae_<name>"..., ["angle_error"]}``.

    Raises:
        ValueError: shapes that do not fit, no images, or non-finite values.

    Example:
        >>> keypoint_metrics(np.array([[[10.0, 10.0]]]), np.array([[[13.0, 14.0]]]), ("slot",))["mae"]
        5.0
    """
    predicted = np.asarray(predicted, np.float64)
    truth = np.asarray(truth, np.float64)
    if predicted.shape != truth.shape or predicted.ndim != 3 or predicted.shape[2] != 2 \
            or predicted.shape[1] != len(names) or predicted.shape[0] == 0:
        raise ValueError(f"expected predicted and true points of shape (N, {len(names)}, 2) with N >= 1, got "
                         f"{predicted.shape} and {truth.shape}")
    if not (np.isfinite(predicted).all() and np.isfinite(truth).all()):
        raise ValueError("keypoints must be finite")
    errors = np.linalg.norm(predicted - truth, axis=2)
    metrics = {"mae": float(errors.mean()), "rmse": float(np.sqrt((errors ** 2).mean()))}
    metrics.update({f"hit@{r}px": float((errors <= r).mean()) for r in HIT_RADII})
    metrics.update({f"mae_{name}": float(errors[:, k].mean()) for k, name in enumerate(names)})
    if predicted_angle is not None:
        metrics["angle_error"] = float(angle_errors(predicted_angle, true_angle, symmetry).mean())
    return metrics


def angle_errors(predicted: np.ndarray, truth: np.ndarray, symmetry: np.ndarray | None = None) -> np.ndarray:
    """|predicted - truth| in degrees, wrapped to the smallest equivalent rotation (period 360 / symmetry)."""
    if truth is None:
        raise ValueError("true angles are needed to score predicted angles")
    predicted = np.asarray(predicted, np.float64)
    truth = np.asarray(truth, np.float64)
    if predicted.shape != truth.shape:
        raise ValueError(f"expected predicted and true angles of the same shape, got {predicted.shape} and "
                         f"{truth.shape}")
    period = 360.0 / (np.ones_like(truth) if symmetry is None else np.maximum(np.asarray(symmetry, np.float64), 1))
    difference = np.mod(predicted - truth, period)
    return np.minimum(difference, period - difference)


def heatmap_agreement(masks: np.ndarray, reference_masks: np.ndarray, scores: np.ndarray,
                      reference_scores: np.ndarray) -> dict[str, float]:
    """How closely thresholded heatmaps agree with a reference's (e.g. INT8 against FP32), as users act on them.

    Args:
        masks, reference_masks: (N, H, W) bool, pixels above the decision threshold.
        scores, reference_scores: (N,) image scores (the heatmaps' maxima).

    Returns:
        ``decision_agreement``: the share of images whose decision (any pixel above the threshold)
        is the same; ``pixel_f1``: F1 of the masks against the reference masks over every pixel
        (1 when neither has a pixel above the threshold); ``score_shift_mean`` / ``score_shift_max``:
        the mean and largest absolute change of an image's score.

    Example:
        >>> m = np.zeros((2, 2, 2), bool); m[0, 0, 0] = True
        >>> r = m.copy(); r[0, 1, 1] = True
        >>> heatmap_agreement(m, r, np.array([0.6, 0.1]), np.array([0.7, 0.1]))["pixel_f1"]
        0.6666666666666666
    """
    masks, reference_masks = np.asarray(masks, bool), np.asarray(reference_masks, bool)
    if masks.shape != reference_masks.shape or masks.ndim != 3 or masks.shape[0] == 0:
        raise ValueError(f"expected masks and reference masks of one shape (N, H, W) with N >= 1, got "
                         f"{masks.shape} and {reference_masks.shape}")
    decisions = masks.reshape(len(masks), -1).any(axis=1)
    reference_decisions = reference_masks.reshape(len(masks), -1).any(axis=1)
    true_pos = int(np.count_nonzero(masks & reference_masks))
    wrong = int(np.count_nonzero(masks ^ reference_masks))
    shift = np.abs(np.asarray(scores, np.float64) - np.asarray(reference_scores, np.float64))
    return {"decision_agreement": float((decisions == reference_decisions).mean()),
            "pixel_f1": 1.0 if true_pos + wrong == 0 else 2 * true_pos / (2 * true_pos + wrong),
            "score_shift_mean": float(shift.mean()), "score_shift_max": float(shift.max())}


def keypoint_agreement(points: np.ndarray, reference_points: np.ndarray, found: np.ndarray,
                       reference_found: np.ndarray, angles: np.ndarray | None = None,
                       reference_angles: np.ndarray | None = None) -> dict[str, float]:
    """How closely located points agree with a reference's (e.g. INT8 against FP32).

    Args:
        points, reference_points: (N, K, 2) x, y in source pixels.
        found, reference_found: (N, K) bool, points whose score reached the threshold.
        angles, reference_angles: optional (N,) angles in degrees.

    Returns:
        ``decision_agreement``: the share of points found (or not) alike; ``point_shift_mean_px`` /
        ``point_shift_max_px``: how far points moved; ``angle_shift_max_deg`` (with angles): the
        largest change of angle, wrapped to 0..180.
    """
    points, reference_points = np.asarray(points, np.float64), np.asarray(reference_points, np.float64)
    if points.shape != reference_points.shape or points.ndim != 3 or points.shape[0] == 0:
        raise ValueError(f"expected points and reference points of one shape (N, K, 2) with N >= 1, got "
                         f"{points.shape} and {reference_points.shape}")
    shift = np.linalg.norm(points - reference_points, axis=2)
    out = {"decision_agreement": float((np.asarray(found, bool) == np.asarray(reference_found, bool)).mean()),
           "point_shift_mean_px": float(shift.mean()), "point_shift_max_px": float(shift.max())}
    if angles is not None and reference_angles is not None:
        out["angle_shift_max_deg"] = float(angle_errors(angles, reference_angles).max())
    return out
