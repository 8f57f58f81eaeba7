"""The one error every decoder raises: which item, which field, and why."""

from __future__ import annotations

import reprlib

# Values shown in reasons are cut short: a reason must stay readable (and cheap to build)
# whatever the value is, e.g. a 4,000-digit number or a list nested 900 levels deep.
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 2, 60, 60, 40


def show(value: object) -> str:
    """A short ``repr`` of ``value`` for a reason (nesting, long text and long numbers cut)."""
    return _SHOW.repr(value)


# The most characters of an item id an error message shows.
SHOWN_ID_CHARS = 200


class DecodeError(ValueError):
    """A message that does not fit its contract.

    Parameters
    ----------
    item_id : the id of the offending item, or ``None`` when it has none.
    field : the offending field (dotted path), or ``None`` for the whole message.
    reason : what is wrong, in words.

    Attributes
    ----------
    unexpected : ``True`` when a decoder's safety net raised it for an error no check of
        the decoder foresaw (the reason names the exception). The stream goes on either way;
        the property tests and the fuzzer fail on it, so each such input gets its own check.
    """

    unexpected = False

    def __init__(self, item_id: str | None, field: str | None, reason: str) -> None:
        self.item_id = item_id
        self.field = field
        self.reason = reason
        # (an id is shown up to SHOWN_ID_CHARS: a producer's 1 MB record key would otherwise be a 1 MB log line per record)
        if item_id is None:
            where = "item <no id>"
        elif len(item_id) <= SHOWN_ID_CHARS:
            where = f"item {item_id!r}"
        else:
            where = f"item {item_id[:SHOWN_ID_CHARS]!r} (the first {SHOWN_ID_CHARS} of {len(item_id)} characters)"
        what = f"field {field!r}" if field is not None else "message"
        super().__init__(f"{where}: {what}: {reason}")

    @classmethod
    def from_unexpected(cls, item_id: str | None, exc: BaseException) -> DecodeError:
        """The error for ``exc``, raised by a decoder where no check expected one."""
        err = cls(item_id, None, f"could not be decoded ({type(exc).__name__}: {show(str(exc))})")
        err.unexpected = True
        return err
