"""``lhrnet``, training part: Lite-HRNet-18 + LiteFPN two-keypoint localiser (a part and its slot, and their angle).

Modules: ``network`` (backbone, LiteFPN, dual head), ``scenes`` and
``augment`` (synthetic assembly scenes and their augmentation), ``make_dataset``
(the dataset writer), ``targets`` (heatmap targets and the decoding),
``losses`` (CenterNet focal and L1), ``schedule`` (warm-up and cosine restarts),
``data`` (the training dataset), ``evaluate`` (the PyTorch reference of the
exported graph and the metrics), ``report`` (its sections of a run's report),
``options`` (typed options and flags) and ``family`` (:class:`LhrnetTraining`,
registered here under ``"lhrnet"``).
"""

from training._family import TRAINING_FAMILIES
from training.families.lhrnet.family import LhrnetTraining

__all__ = ["FAMILY", "LhrnetTraining"]

FAMILY = TRAINING_FAMILIES.register(LhrnetTraining.name)(LhrnetTraining())
