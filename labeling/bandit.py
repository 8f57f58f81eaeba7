"""The strategy chosen per campaign: a bandit over whole strategies, rewarded by the random-control labels.

Active Learning by Learning (Hsu & Lin, AAAI 2015; libact's ALBL) runs EXP4.P over
strategies as experts and rewards them with an importance-weighted accuracy. Here every
arm proposes a whole leased batch, so the bandit is EXP3 over the arms (each arm is an
expert that puts all its mass on its own batch: EXP4 reduces to EXP3), with a floor
``gamma / K`` on every arm's probability.

The reward is an unbiased estimate of how much the last batches improved the model,
measured on the random-control labels (uniform draws from the queue): when a control label
arrives, the probability the live model gives its true class minus the probability the
previous live model gave it. A control item is a uniform draw from the pool, so the mean
of that difference is the change in expected true-class probability over the pool, the
improvement the batches leased between the two versions bought. It is credited to the arms
that chose those batches (importance-weighted by ``1 / p`` as EXP3 requires). Compared
with ALBL's reward (the new model's accuracy), the difference leaves out everything the
earlier batches did, and a probability is less noisy than a 0/1 correctness.

The state (weights, picks and rewards per arm) is kept by the selector and written to the
queue's metadata (``bandit_state``, JSON) after every update: the labeler API's ``/status``
shows it (``strategy_bandit``) and so does the simulate report (``bandit`` per campaign).
Model versions do not carry it: the retrainer, which publishes them, never sees the arms.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from activestream.labeling.live_model import LiveModel
from activestream.rankedqueue import RankedQueue
from activestream.rankedqueue.keys import META_BANDIT
from activestream.scorer.versions import LiveVersion

log = logging.getLogger(__name__)

DEFAULT_GAMMA = 0.2  # exploration: every arm keeps at least gamma / K of the batches
DEFAULT_ETA = 2.0  # learning rate on the centered, importance-weighted reward


@dataclass
class Exp3:
    """EXP3 (Auer et al., 2002) with a uniform exploration floor, on rewards in ``[-1, 1]``.

    Parameters
    ----------
    arms : arm names.
    gamma : share of the probability spread uniformly over the arms.
    eta : learning rate: ``log w_a += eta * r / p_a`` for the chosen arm.
    """

    arms: tuple[str, ...]
    gamma: float = DEFAULT_GAMMA
    eta: float = DEFAULT_ETA
    log_w: np.ndarray = field(init=False)
    picks: np.ndarray = field(init=False)
    rewards: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("a bandit needs at least one arm")
        self.log_w = np.zeros(len(self.arms))
        self.picks = np.zeros(len(self.arms), dtype=np.int64)
        self.rewards = np.zeros(len(self.arms))

    def probabilities(self) -> np.ndarray:
        """(K,) the probability of choosing each arm now."""
        w = np.exp(self.log_w - self.log_w.max())
        return (1.0 - self.gamma) * w / w.sum() + self.gamma / len(self.arms)  # type: ignore[no-any-return]

    def choose(self, rng: np.random.Generator) -> tuple[int, float]:
        """Draw an arm: ``(index, its probability)``."""
        p = self.probabilities()
        a = int(rng.choice(len(p), p=p))
        self.picks[a] += 1
        return a, float(p[a])

    def update(self, arm: int, reward: float, p: float) -> None:
        """Credit ``reward`` (in [-1, 1]) to ``arm``, drawn with probability ``p``."""
        self.rewards[arm] += reward
        self.log_w[arm] += self.eta * float(np.clip(reward, -1.0, 1.0)) / max(p, 1e-6)
        self.log_w -= self.log_w.max()  # (only differences matter; keeps exp() finite)

    def state(self) -> dict[str, float]:
        """Flat figures for a report or model-version metrics: ``strategy_weight_<arm>``, ``strategy_picks_<arm>``, ``strategy_reward_<arm>``."""
        p = self.probabilities()
        out: dict[str, float] = {}
        for j, a in enumerate(self.arms):
            out[f"strategy_weight_{a}"] = float(p[j])
            out[f"strategy_picks_{a}"] = float(self.picks[j])
            out[f"strategy_reward_{a}"] = float(self.rewards[j])
        return out


def true_class_probability(P: np.ndarray, classes: Sequence[object], answer: object, task: str) -> float | None:
    """The probability a model gave the labeler's answer.

    Parameters
    ----------
    P : (n_classes,) probabilities of one item (multi-label: (n_labels,) independent ones).
    classes : the columns' classes or label names.
    answer : a class (multi-class) or a sequence of label names (multi-label).
    task : ``"multiclass"`` or ``"multilabel"``.

    Returns
    -------
    The true class's probability (multi-label: the mean probability of each label's true 0/1
    value), or ``None`` for a class the model does not know yet.
    """
    names = [str(c) for c in classes]
    if task == "multilabel":
        truth = {str(v) for v in answer} if isinstance(answer, list | tuple) else {str(answer)}
        y = np.array([n in truth for n in names], dtype=np.float64)
        return float(np.mean(y * P + (1.0 - y) * (1.0 - P)))
    try:
        return float(P[names.index(str(answer))])
    except ValueError:
        return None


ArmSelector = Callable[[list[str], np.ndarray, np.ndarray, int], Sequence[int]]


class BanditSelector:
    """Chooses the arm of each leased batch and learns from the control labels.

    Used by :class:`activestream.labeling.service.LabelService` through three hooks:
    :meth:`random_picks` (before a lease: draws the arm; the ``random`` arm leases the whole
    batch as random-control picks), :meth:`__call__` (the batch selector of the other arms)
    and :meth:`observe` (each accepted label; control labels bring the reward).

    Parameters
    ----------
    arms : arm name -> batch selector (``random``: ``None``, leased as control picks).
    live : the live model (its current and previous versions score the control labels).
    queue : the ranked queue (the state is written to its metadata).
    seed : seed of the arm draws.
    """

    def __init__(self, arms: dict[str, ArmSelector | None], live: LiveModel, queue: RankedQueue, *, seed: int = 0,
                 gamma: float = DEFAULT_GAMMA, eta: float = DEFAULT_ETA) -> None:
        self.arms = arms
        self.bandit = Exp3(tuple(arms), gamma=gamma, eta=eta)
        self.live = live
        self.queue = queue
        self._rng = np.random.default_rng((seed, 23))
        self._lock = threading.Lock()
        self._current = 0
        self._seen: LiveVersion | None = None  # the live version at the last look
        self._previous: LiveVersion | None = None  # the one before it
        self._history: list[tuple[int, int, float]] = []  # (live version when leased, arm, its probability)

    def _refresh(self) -> LiveVersion | None:
        if int(self.queue.get_meta("model_version") or 0) > self.live.version:
            self.live.refresh(2.0)  # the scorer already ranks by a newer version: catch up first
        now = self.live.live  # (an arm may have refreshed the shared LiveModel too: compare with what we saw)
        if now is not None and (self._seen is None or now.version != self._seen.version):
            self._previous, self._seen = self._seen, now
        return now

    def random_picks(self, k: int) -> int:
        """Draw this lease's arm; how many of its ``k`` items are random-control picks (all for ``random``)."""
        with self._lock:
            cur = self._refresh()
            self._current, p = self.bandit.choose(self._rng)
            self._history.append((0 if cur is None else cur.version, self._current, p))
            self._history = self._history[-1000:]
            self._save()
            return k if self.arms[self.bandit.arms[self._current]] is None else 0

    def __call__(self, ids: list[str], scores: np.ndarray, X: np.ndarray, k: int) -> Sequence[int]:
        fn = self.arms[self.bandit.arms[self._current]]
        if fn is None:  # (random: its control picks fell short, e.g. all passed on: fill from the top)
            return list(range(min(k, len(ids))))
        return fn(ids, scores, X, k)

    def observe(self, features: np.ndarray | None, answer: object, control: bool) -> None:
        """An accepted label: a control label rewards the arms that chose the batches between the previous and the live version."""
        if not control or features is None:
            return
        with self._lock:
            cur = self._refresh()
            prev = self._previous
            if cur is None or prev is None:
                return
            X = np.asarray(features, dtype=np.float32)[None, :]
            try:
                q_now = true_class_probability(cur.model.predict_proba_many(X)[0], cur.classes, answer, cur.task)
                q_before = true_class_probability(prev.model.predict_proba_many(X)[0], prev.classes, answer, prev.task)
            except Exception:  # a model that cannot score the item (the scorer reports it): no reward
                log.exception("bandit: could not score a control label with v%d / v%d", cur.version, prev.version)
                return
            if q_now is None:
                return
            reward = q_now - (q_before or 0.0)
            credited = [(a, p) for v, a, p in self._history if prev.version <= v < cur.version]
            for a, p in credited:
                self.bandit.update(a, reward, p)
            if credited:
                self._save()

    def state(self) -> dict[str, float]:
        return self.bandit.state()

    def _save(self) -> None:
        self.queue.set_meta(**{META_BANDIT: json.dumps(self.bandit.state())})


def parse_state(raw: str | None) -> dict[str, float]:
    """The bandit's state from its JSON (empty when unset or unreadable)."""
    try:
        state = json.loads(raw or "{}")
        return {str(k): float(v) for k, v in state.items()} if isinstance(state, dict) else {}
    except (ValueError, TypeError):
        log.warning("queue meta %r is not the bandit's JSON: taken as empty", META_BANDIT)
        return {}


def read_state(queue: RankedQueue) -> dict[str, float]:
    """The bandit's last written state (empty when no bandit ran on this queue)."""
    return parse_state(queue.get_meta(META_BANDIT))
