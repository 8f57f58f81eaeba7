"""The one error every decoder raises: which item, which field, and why."""

from __future__ import annotations


class DecodeError(ValueError):
    """A message that does not fit its contract.

    Parameters
    ----------
    item_id : the id of the offending item, or ``None`` when it has none.
    field : the offending field (dotted path), or ``None`` for the whole message.
    reason : what is wrong, in words.
    """

    def __init__(self, item_id: str | None, field: str | None, reason: str) -> None:
        self.item_id = item_id
        self.field = field
        self.reason = reason
        where = f"item {item_id!r}" if item_id is not None else "item <no id>"
        what = f"field {field!r}" if field is not None else "message"
        super().__init__(f"{where}: {what}: {reason}")
