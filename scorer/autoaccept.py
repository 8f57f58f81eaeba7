"""Auto-accept: which items a calibrated confidence threshold lets bypass humans (pure).

The threshold itself is calibrated by the retrainer (``retrainer.calibration``).
"""

from __future__ import annotations

import numpy as np


def accepted(probas: np.ndarray, threshold: float | None) -> np.ndarray:
    """``probas : (n, k) -> (n,)`` mask of items confident enough to bypass humans."""
    if threshold is None or len(probas) == 0:
        return np.zeros(len(probas), dtype=bool)
    return np.asarray(probas.max(axis=1) >= threshold)
