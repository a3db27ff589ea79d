"""``brn``, training part: everything training knows about three-channel contrastive defect segmentation.

Modules: ``network`` (the UNet), ``backgrounds`` and ``defects`` (synthetic
data), ``data`` (training patches), ``losses`` (focal loss, gamma schedule),
``evaluate`` (the PyTorch full-image reference ``predict_heatmaps`` and the
metrics), ``make_dataset`` (the synthetic dataset writer), ``samples``
(labelled images for the export), ``report`` (its sections of a run's report),
``options`` (typed options and flags) and ``family`` (:class:`BrnTraining`,
registered here under ``"brn"``).
"""

from training._family import TRAINING_FAMILIES
from training.families.brn.family import BrnTraining

__all__ = ["BrnTraining", "FAMILY"]

FAMILY = TRAINING_FAMILIES.register(BrnTraining.name)(BrnTraining())
