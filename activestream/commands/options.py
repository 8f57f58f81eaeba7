"""Shared argparse options and types of the ``activestream`` commands.

A numeric option out of its range is refused by argparse with one line naming the bound
(``argument --port: must be a port in [0, 65535] (0: any free port), got 99999``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any, Protocol

from activestream.scorer.strategies import DEFAULT_EXPLORE

log = logging.getLogger(__name__)


class Subparsers(Protocol):
    """What a command's ``add_parser`` is given: the ``activestream`` parser's ``add_subparsers()``."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def bounded(kind: type[float], low: float, high: float, what: str, *, open_ends: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` within bounds, else one line saying ``what``.

    Parameters
    ----------
    kind : ``int`` or ``float``.
    low, high : the bounds, inclusive (``[low, high]``), or exclusive with ``open_ends``.
    what : the words for the bound in the error (``"at least 1"``).

    Returns
    -------
    A callable for ``add_argument(type=...)``; it raises ``argparse.ArgumentTypeError``.
    """

    def parse(text: str) -> float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        inside = low < v < high if open_ends else low <= v <= high  # (NaN is in no interval)
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return v

    return parse


count = bounded(int, 1, float("inf"), "at least 1")
count_or_off = bounded(int, 0, float("inf"), "an integer >= 0 (0: off)")
share = bounded(float, 0.0, 1.0, "in [0, 1]")
open_share = bounded(float, 0.0, 1.0, "strictly between 0 and 1", open_ends=True)
seconds = bounded(float, 0.0, 1e12, "a finite number >= 0")
positive_seconds = bounded(float, 0.0, 1e12, "a finite number of seconds > 0", open_ends=True)
port = bounded(int, 0, 65535, "a port in [0, 65535] (0: any free port)")


def strategy_name(text: str) -> str:
    """An argparse type: a strategy name the scorer knows (``margin+kcenter``, ``random``, ...)."""
    from activestream.scorer.strategies import Strategy

    try:
        Strategy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# --------------------------------------------------------------------------- services


def add_connection(p: argparse.ArgumentParser) -> None:
    """``--kafka-bootstrap-servers``, ``--redis-url``, ``--topic-prefix``, ``--namespace``: where a service connects."""
    p.add_argument("--kafka-bootstrap-servers", default=None, help="default: KAFKA_BOOTSTRAP_SERVERS")
    p.add_argument("--redis-url", default=None, help="default: REDIS_URL")
    p.add_argument("--topic-prefix", default=None,
                   help="default: ACTIVESTREAM_TOPIC_PREFIX, else the namespace (the default namespace's: 'activestream')")
    add_namespace(p)


def add_namespace(p: argparse.ArgumentParser) -> None:
    """``--namespace``: the Redis key namespace of the queue."""
    p.add_argument("--namespace", default=None, help="Redis key namespace (default: ACTIVESTREAM_NAMESPACE or 'default')")


def add_metrics_port(p: argparse.ArgumentParser) -> None:
    """``--metrics-port``: where a service serves ``/metrics`` and ``/healthz``."""
    p.add_argument("--metrics-port", type=int, default=None, help="port for /metrics and /healthz (default: any free port)")


def add_loop(p: argparse.ArgumentParser) -> None:
    """``--metrics-port``, ``--burst`` and ``--max-messages``: a consuming service's loop."""
    add_metrics_port(p)
    p.add_argument("--burst", action="store_true", help="drain what is waiting, then exit")
    p.add_argument("--max-messages", type=count, default=None, help="exit after this many messages")


def add_estimator(p: argparse.ArgumentParser, *, repeatable: bool = False) -> None:
    """``--estimator module:callable``: the classifier the retrainer fits (``simulate`` and ``demo``: repeatable, each is compared)."""
    p.add_argument("--estimator", default=None, metavar="MODULE:CALLABLE", action="append" if repeatable else "store",
                   help="factory of any scikit-learn-compatible classifier, e.g. mypkg.models:make_model, or a scikit-learn "
                        "classifier's name (HistGradientBoostingClassifier) "
                        f"{'(repeatable: every strategy runs with each) ' if repeatable else ''}"
                        "(default: ACTIVESTREAM_ESTIMATOR, else a standardized logistic regression)")


# --------------------------------------------------------------------------- demo / simulate


def add_simulation(p: argparse.ArgumentParser, *, budget: int, report: str) -> None:
    """The options ``demo`` and ``simulate`` share: campaign sizes, seeds, labeling time, Redis, report path."""
    p.add_argument("--budget", type=count, default=budget, help="labels per campaign (default %(default)s)")
    p.add_argument("--batch", type=count, default=10, help="labels per round; one retrain per round (default %(default)s)")
    p.add_argument("--init", type=count, default=20, help="seed labels before the first model (default %(default)s)")
    p.add_argument("--seeds", type=count, default=3, help="number of seeds (default %(default)s)")
    p.add_argument("--seconds-per-label", type=seconds, default=30.0, help="labeling time for hours saved (default %(default)s)")
    p.add_argument("--test-size", type=open_share, default=0.3, help="held-out test share (default %(default)s)")
    p.add_argument("--workers", type=count, default=2, help="parallel campaign processes (default %(default)s)")
    p.add_argument("--explore", type=share, default=DEFAULT_EXPLORE, help="share of each batch picked at random: the random-control slice (default %(default)s)")
    p.add_argument("--curriculum-labels", type=count_or_off, default=None,
                   help="easy-to-hard schedule over this many labels (default and 0: off, as ACTIVESTREAM_CURRICULUM_LABELS)")
    p.add_argument("--cold-start", choices=("random", "representative"), default="random",
                   help="first labels before any model: the seeded random order, or k-means centroids of the queue (default: %(default)s)")
    p.add_argument("--auto-accept-precision", type=open_share, default=0.99,
                   help="precision auto-accepted predictions keep (their 95%% lower bound), as ACTIVESTREAM_AUTO_ACCEPT_PRECISION "
                        "(default %(default)s)")
    add_estimator(p, repeatable=True)
    p.add_argument("--redis-url", default=None, help="use this Redis (default: REDIS_URL, else a local redis-server)")
    p.add_argument("--report", default=report, help="JSON report path; the learning-curve plot is written beside it, the same name with .png (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
