"""The random-control share of a lease: fixed, or adaptive to how uncertain the live estimates still are.

The control picks are what the live estimates (``est_*``, :mod:`activestream.retrainer.estimates`)
are made from, and the strategy bandit's reward and the auto-accept calibration read them too; every
control pick is also a label the strategy did not choose. So the share is worth more while the
estimates are too uncertain to steer by, and less once they are.

The rule (:class:`ControlShare`, :func:`control_share`), from the live model version's figures:

- no estimates yet (too few control labels, the first estimate still running, or a task the
  retrainer does not estimate, such as multi-label): the **high** share;
- the estimated accuracy's 95% interval (``est_accuracy_high - est_accuracy_low``) wider than
  ``width``: the **high** share;
- otherwise the **low** share. It is never 0 (validated): the walk goes on, so the estimates keep
  updating as the model changes, and a later version whose interval widens again (the sample is
  the walk's: a new label can move it) brings the high share back.

A fixed share (``ACTIVESTREAM_EXPLORE``, default 0.1) is the other mode: a plain ``float``.
Which mode is the default, and why, is in docs/benchmarks.md ("Adaptive control share").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_ADAPTIVE = False  # measured against a fixed 10%: docs/benchmarks.md, "Adaptive control share"
DEFAULT_HIGH = 0.2
DEFAULT_LOW = 0.05
DEFAULT_WIDTH = 0.1  # the accuracy interval's width (95%) below which the estimates steer: about +-5 points


@dataclass(frozen=True)
class ControlShare:
    """The adaptive control share's parameters (see the module docstring for the rule).

    Parameters
    ----------
    high : share while the estimates are missing or too uncertain, in (0, 1].
    low : share once the accuracy interval is narrower than ``width``, in (0, high].
    width : the widest 95% accuracy interval (high bound minus low bound) the estimates steer with, in (0, 1].
    """

    high: float = DEFAULT_HIGH
    low: float = DEFAULT_LOW
    width: float = DEFAULT_WIDTH

    def __post_init__(self) -> None:
        if not 0.0 < self.high <= 1.0:
            raise ValueError(f"control share: high must be in (0, 1], got {self.high}")
        if not 0.0 < self.low <= self.high:
            raise ValueError(f"control share: low must be in (0, high={self.high}], got {self.low} (0 would stop the estimates updating)")
        if not 0.0 < self.width <= 1.0:
            raise ValueError(f"control share: width must be in (0, 1], got {self.width}")


Explore = float | ControlShare  # a fixed share, or the adaptive rule


def accuracy_width(metrics: Mapping[str, float] | None) -> float | None:
    """The live estimated accuracy's interval width (``est_accuracy_high - est_accuracy_low``), or ``None``: no estimate.

    >>> accuracy_width({"est_accuracy": 0.9, "est_accuracy_low": 0.85, "est_accuracy_high": 0.94})
    0.09
    >>> accuracy_width({"est_control_labels_needed": 12.0}) is None
    True
    """
    if not metrics:
        return None
    low, high = metrics.get("est_accuracy_low"), metrics.get("est_accuracy_high")
    if not (isinstance(low, int | float) and isinstance(high, int | float) and math.isfinite(low) and math.isfinite(high)):
        return None  # (a record from the queue's meta: anything not a number is no estimate)
    return round(float(high) - float(low), 12)


def control_share(explore: Explore, metrics: Mapping[str, float] | None) -> float:
    """This lease's control share.

    Parameters
    ----------
    explore : a fixed share (returned as is), or the adaptive rule's parameters.
    metrics : the live model version's figures (its ``est_*`` among them), ``None`` before any version.

    >>> control_share(0.1, None)
    0.1
    >>> control_share(ControlShare(), None)
    0.2
    >>> control_share(ControlShare(), {"est_accuracy": 0.9, "est_accuracy_low": 0.86, "est_accuracy_high": 0.93})
    0.05
    """
    if not isinstance(explore, ControlShare):
        return float(explore)
    width = accuracy_width(metrics)
    return explore.high if width is None or width > explore.width else explore.low
