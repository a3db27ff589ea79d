import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from runtime._metrics import auroc, segmentation_aurocs


def test_auroc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.random(5000) < 0.1
    scores = np.round(rng.random(5000) + labels * 0.4, 2)  # many ties
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        auroc(np.zeros(4), np.arange(4))


def test_segmentation_aurocs_perfect_and_inverted():
    masks = np.zeros((3, 8, 8), bool)
    masks[1, 2:4, 2:4] = True
    assert segmentation_aurocs(masks, masks.astype(np.float32)) == {"image_auroc": 1.0, "pixel_auroc": 1.0}
    assert segmentation_aurocs(masks, 1 - masks.astype(np.float32))["pixel_auroc"] == 0.0
