"""Every topic name, built under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

ITEMS = "items"
QUEUE = "queue"
LABELS = "labels"
MODELS = "models"
DEAD_LETTERS = "deadletter"
AUTO_LABELS = "autolabels"
CONTROL = "control"  # the retrainer's first observation of each control label (retrainer.control_log)
SKIPS = "skips"  # labelers on the queue topic passing on an item (the dispatcher hands it back)

ALL = (ITEMS, QUEUE, LABELS, MODELS, DEAD_LETTERS, AUTO_LABELS, CONTROL, SKIPS)

# Consumer groups: the roles below, each named ``{prefix}.{role}[.{qualifier}]`` by
# :meth:`Topics.group`, so one prefix holds a deployment's topics and groups alike.
SCORER_GROUP = "scorer"  # scorers share the items topic's partitions
RETRAINER_GROUP = "retrainer"  # the faust retrainer (the plain one reads the labels log group-less)
DISPATCHER_GROUP = "dispatcher"  # qualified by the labeler group it serves
LABELERS_GROUP = "labelers"  # labelers reading the queue topic; also the default labeler group's name

QUALIFIED_GROUPS = (DISPATCHER_GROUP, LABELERS_GROUP)  # roles whose groups take a labeler group after them


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a campaign's topic prefix, else ``None``: one with a part (but its first) that is a role
    taking a qualifier (``team.dispatcher``, ``team.labelers.x``) would name its own groups (``team.dispatcher.scorer``) as
    the groups of prefix ``team``'s dispatcher or labelers for some labeler group (``scorer``, ``x.scorer``): two
    campaigns' consumers in one group."""
    parts = prefix.split(".")
    for j in range(1, len(parts)):  # (a labeler group may hold dots: team.dispatcher.x.scorer is team's for group x.scorer)
        if parts[j] in QUALIFIED_GROUPS:
            head = ".".join(parts[:j])
            return (f"its part '.{parts[j]}' makes its consumer groups ({prefix}.scorer, ...) those of campaign {head!r}'s "
                    f"{parts[j]} groups for some labeler group ({head}.{parts[j]}.<labeler group>)")
    return None


# The models topic is keyed by this constant so compaction keeps the newest version.
MODEL_KEY = b"model"


@dataclass(frozen=True)
class Topics:
    """Fully qualified topic names, ``{prefix}.{name}``."""

    prefix: str = "activestream"

    def name(self, short: str) -> str:
        return f"{self.prefix}.{short}"

    def labelers_group(self, labeler_group: str = LABELERS_GROUP) -> str:
        """The consumer group a labeler group's members read the queue topic in (``activestream label``; the dispatcher
        of that labeler group waits for its members): ``{prefix}.labelers``, or ``{prefix}.labelers.{labeler_group}``."""
        return self.group(LABELERS_GROUP) if labeler_group == LABELERS_GROUP else self.group(LABELERS_GROUP, labeler_group)

    def group(self, role: str, *qualifiers: str) -> str:
        """The consumer group id of ``role`` (e.g. ``SCORER_GROUP``): ``{prefix}.{role}[.{qualifier}...]``."""
        return ".".join((self.prefix, role, *qualifiers))

    @property
    def items(self) -> str:
        return self.name(ITEMS)

    @property
    def queue(self) -> str:
        return self.name(QUEUE)

    @property
    def labels(self) -> str:
        return self.name(LABELS)

    @property
    def models(self) -> str:
        return self.name(MODELS)

    @property
    def dead_letters(self) -> str:
        return self.name(DEAD_LETTERS)

    @property
    def auto_labels(self) -> str:
        return self.name(AUTO_LABELS)

    @property
    def control(self) -> str:
        return self.name(CONTROL)

    @property
    def skips(self) -> str:
        return self.name(SKIPS)

    def all(self) -> list[str]:
        return [self.name(t) for t in ALL]
