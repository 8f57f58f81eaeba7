"""The campaign (namespace) label every exported metric carries.

Two campaigns on one Prometheus are told apart by it: an alert or dashboard panel compares a
scorer with the retrainer of the same namespace (``by (namespace)`` / ``on (namespace)``).
The bundles (``scorer/metrics.py``, ``retrainer/metrics.py``, ``labeling/metrics.py``) bind it
when they are created, so the code that counts never names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

NAMESPACE_LABEL = "namespace"

M = TypeVar("M", bound=MetricWrapperBase)  # a Counter, Gauge or Histogram


def in_namespace(metric: M, namespace: str) -> M:
    """The child of ``metric`` (declared with only the ``namespace`` label) for ``namespace``."""
    return metric.labels(**{NAMESPACE_LABEL: namespace})


class Namespaced(Generic[M]):
    """A metric with more labels than the namespace, the namespace bound: ``.labels(reason=...)``.

    Parameters
    ----------
    metric : declared with ``namespace`` first among its labels.
    namespace : the campaign this process serves.
    """

    def __init__(self, metric: M, namespace: str) -> None:
        self.metric = metric
        self.namespace = namespace

    def labels(self, **labels: str) -> M:
        """The child for ``labels`` in this namespace."""
        return self.metric.labels(**{NAMESPACE_LABEL: self.namespace}, **labels)

    def collect(self) -> Iterable[Metric]:
        """The metric's families, as its registry would collect them (every namespace's samples)."""
        return self.metric.collect()
