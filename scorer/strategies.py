"""Named scoring strategies: ``(probas, ids) -> scores`` with higher = label sooner.

A strategy is a pure function of the model's probabilities (and, for the random
control, of the item ids and a seed), so the scorer can apply it per item as items
stream in and again to every pending item when a new model version arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from activestream.scorer import uncertainty

ScoreFn = Callable[[np.ndarray], np.ndarray]


def random_scores(ids: Sequence[str], seed: int, salt: int = 0) -> np.ndarray:
    """Deterministic uniform scores in ``[0, 1)`` from a hash of (seed, salt, id).

    Parameters
    ----------
    ids : (n,) item ids.
    seed : run seed; ``salt`` varies the order between model versions.

    Returns
    -------
    (n,) scores; the same id, seed and salt always give the same score, so a
    redelivered item gets the same place in the queue.
    """
    out = np.empty(len(ids))
    prefix = f"{seed}:{salt}:".encode()
    for i, item_id in enumerate(ids):
        h = hashlib.blake2b(prefix + item_id.encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "little") / 2.0**64
    return out


_MULTICLASS: dict[str, ScoreFn] = {
    "least_confidence": uncertainty.least_confidence,
    "margin": uncertainty.margin,
    "entropy": uncertainty.entropy,
    # The multi-label aggregations reduce to plain entropy for a softmax model.
    "mean_entropy": uncertainty.entropy,
    "max_entropy": uncertainty.entropy,
}

_MULTILABEL: dict[str, ScoreFn] = {
    # The multi-class strategies fall back to the mean binary entropy for sigmoid heads,
    # except "margin" (the default's base) when the model carries its training set's label
    # cardinality: then it is Li & Guo's uncertainty x cardinality inconsistency, see
    # Strategy.score.
    "least_confidence": uncertainty.multilabel_mean_entropy,
    "margin": uncertainty.multilabel_mean_entropy,
    "entropy": uncertainty.multilabel_mean_entropy,
    "mean_entropy": uncertainty.multilabel_mean_entropy,
    "max_entropy": uncertainty.multilabel_max_entropy,
}

# Committee strategies: scored on each ensemble member's probabilities (members, n, k).
_COMMITTEE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "vote_entropy": uncertainty.vote_entropy,
    "bald": uncertainty.mutual_information,
}

# Chosen by benchmarks/run_strategies.py over four datasets (results in
# benchmarks/results/strategies.md): margin scores, k-center diversity within a leased
# batch, and a 10% random-control slice was the most robust of the candidates.
DEFAULT_STRATEGY = "margin+kcenter"
DEFAULT_EXPLORE = 0.1
RANDOM = "random"
NAMES = (*dict.fromkeys([*_MULTICLASS, "mean_entropy", "max_entropy"]), *_COMMITTEE, RANDOM)
ENSEMBLE_MEMBERS = 5  # heads trained for a committee strategy


BATCH_MODES = ("top", "kmeans", "kcenter", "density", "falcun")
# Where +kmeans / +kcenter / +density measure distances: the standardized features (default), the
# live model's probability vectors ("@proba", e.g. margin+kcenter@proba), a fixed seeded Gaussian
# random projection of the standardized features to 32 dimensions ("@proj"), or the candidates' 32
# leading principal components ("@pca"). Measured at 30 seeds, paired per seed (docs/benchmarks.md):
# @proj - features = +0.0013 +- 0.0022 AUC on the 784-pixel suite, +0.0003 +- 0.0020 on the
# 100-dimensional text suite, -0.0001 +- 0.0005 on digits (64); @pca ties too; @proba lost 0.043 on
# text. So +kcenter and +kmeans keep the features at every feature count (+density: see below).
DIVERSITY_SPACES = ("features", "proba", "proj", "pca")
# +density without a suffix measures representativeness in @proj from this many features on: at 30
# seeds density@proj - density@features = +0.0105 +- 0.0028 AUC on the 784-pixel suite and
# +0.0111 +- 0.0038 on the 100-dimensional text suite (docs/benchmarks.md); +0.0020 +- 0.0010 on
# digits (64 features, 15 seeds). +kmeans and +kcenter gained nothing from it.
DENSITY_PROJ_MIN_FEATURES = 100
# A bandit over whole strategies (Active Learning by Learning, Hsu & Lin 2015): each leased batch
# is chosen by one of BANDIT_ARMS, rewarded from the random-control labels (labeling/bandit.py).
# Its items are scored by margin (the arms' shared base); the random arm leases control picks.
BANDIT = "albl"
BANDIT_ARMS = ("margin", "margin+kcenter", "margin+falcun", "random")


@dataclass(frozen=True)
class Strategy:
    """A named strategy bound to a seed.

    Parameters
    ----------
    name : a score name from :data:`NAMES`, optionally ``+kmeans`` or ``+kcenter`` for a
        diverse leased batch (e.g. ``margin+kmeans``), ``+density`` to weigh the scores by
        representativeness (information density) when a batch is leased, or ``+falcun`` to
        sample the batch by uncertainty plus diversity in probability space (FALCUN).
    seed : seed of the random control and of cold-start ordering.
    """

    name: str = DEFAULT_STRATEGY
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name == BANDIT:
            return
        base, plus, rest = self.name.partition("+")
        batch, _, space = rest.partition("@")
        if base not in NAMES:
            raise ValueError(f"unknown strategy {self.name!r}; choose one of {', '.join(NAMES)} (optionally +{'/+'.join(BATCH_MODES[1:])}), "
                             f"or {BANDIT}")
        if plus and batch not in BATCH_MODES[1:]:  # ("margin+" or "margin+top": "margin" is the top of the ranking)
            raise ValueError(f"unknown batch mode {batch!r} in {self.name!r}; choose one of +{', +'.join(BATCH_MODES[1:])} "
                             f"(or none: {base}, the top of the ranking)")
        if space and space not in DIVERSITY_SPACES:
            raise ValueError(f"unknown diversity space {space!r} in {self.name!r}: +kmeans, +kcenter or +density take "
                             f"@{' or @'.join(DIVERSITY_SPACES)}")
        if space and batch not in ("kmeans", "kcenter", "density"):
            raise ValueError(f"diversity space @{space} in {self.name!r}: only +kmeans, +kcenter or +density take one "
                             f"(+{batch} does not)")

    @property
    def score_name(self) -> str:
        return "margin" if self.name == BANDIT else self.name.partition("+")[0]

    @property
    def diversity_space(self) -> str:
        """The space named after ``@`` (``features`` when none is; :meth:`space_for` gives the one used)."""
        return self.name.partition("@")[2] or "features"

    def space_for(self, n_features: int) -> str:
        """The diversity space for items of ``n_features`` features: the named one, else the default.

        The default is ``features``, except ``proj`` for ``+density`` from
        :data:`DENSITY_PROJ_MIN_FEATURES` features on (measured, see above).
        """
        named = self.name.partition("@")[2]
        if named:
            return named
        return "proj" if self.batch_mode == "density" and n_features >= DENSITY_PROJ_MIN_FEATURES else "features"

    @property
    def needs_members(self) -> bool:
        """Whether the scorer must pass each ensemble member's probabilities."""
        return self.score_name in _COMMITTEE

    @property
    def batch_mode(self) -> str:
        if self.name == BANDIT:
            return BANDIT
        return self.name.partition("+")[2].partition("@")[0] or "top"

    def score(
        self,
        probas: np.ndarray | None,
        ids: Sequence[str],
        *,
        task: str = "multiclass",
        version: int = 0,
        members: np.ndarray | None = None,
        label_cardinality: float | None = None,
    ) -> np.ndarray:
        """Scores for ``ids``.

        Parameters
        ----------
        probas : (n, n_classes) probabilities, or ``None`` before any model exists
            (cold start: a seeded random order, so the first labels are an unbiased sample).
        ids : (n,) item ids.
        task : ``"multiclass"`` or ``"multilabel"``.
        version : live model version (re-salts the random order on each version).
        members : (n_members, n, n_classes) member probabilities, for committee strategies;
            without them (a single-head model) those fall back to the entropy of ``probas``.
        label_cardinality : mean labels per labeled item (multi-label models publish it as
            ``metrics["label_cardinality"]``); with it, multi-label ``margin`` scores by
            :func:`scorer.uncertainty.multilabel_adaptive`, without it by the mean entropy.

        Returns
        -------
        (n,) float64 scores, higher = label sooner.
        """
        if probas is None or self.score_name == RANDOM:
            return random_scores(ids, self.seed, version if self.score_name == RANDOM else 0)
        if self.needs_members:
            if members is not None and members.shape[0] > 1 and task == "multiclass":
                return np.asarray(_COMMITTEE[self.score_name](members), dtype=np.float64)
            table_fb = _MULTILABEL if task == "multilabel" else _MULTICLASS
            return np.asarray(table_fb["entropy"](probas), dtype=np.float64)
        if task == "multilabel" and self.score_name == "margin" and label_cardinality is not None:
            return np.asarray(uncertainty.multilabel_adaptive(probas, label_cardinality), dtype=np.float64)
        table = _MULTILABEL if task == "multilabel" else _MULTICLASS
        fn = table.get(self.score_name)
        if fn is None:
            raise ValueError(f"strategy {self.name!r} does not apply to {task} models")
        return np.asarray(fn(probas), dtype=np.float64)
