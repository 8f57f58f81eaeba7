"""Labeler tokens: who a request to the labeler API comes from.

Without tokens the API takes the labeler id a request names, so anyone who can reach it can
label, or skip an item under a few made-up ids until it is dropped. With a tokens file each
request carries ``Authorization: Bearer <token>`` and the labeler id is the token's.

The file has one ``<token> <labeler id>`` per line; blank lines and lines starting with
``#`` are ignored. A labeler may have several tokens (e.g. one per device). The API reads
the file again when it changes (:class:`TokenFile`): a labeler is added or revoked without
a restart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# Shorter tokens could be guessed by a client trying them against the API.
MIN_TOKEN_CHARS = 16
# Labeler ids activestream's own components write under: no client or token may act as a
# dispatcher's group or a Label Studio connector (and label or skip what it was handed), the scorer's
# auto-accept or a baseline.
RESERVED_LABELERS = ("auto", "baseline")
RESERVED_LABELER_PREFIXES = ("dispatch:", "labelstudio:")


def reserved_problem(labeler: str) -> str | None:
    """Why ``labeler`` may not be a labeler's id (one of activestream's own components'), or ``None``."""
    if labeler in RESERVED_LABELERS or labeler.startswith(RESERVED_LABELER_PREFIXES):
        return (f"{labeler!r} is reserved for activestream's own components "
                f"({', '.join(p + '*' for p in RESERVED_LABELER_PREFIXES)}, {', '.join(RESERVED_LABELERS)})")
    return None


class TokenFileError(ValueError):
    """A tokens file the API will not start with (the message names the line)."""


def _digest(token: str) -> bytes:
    # Looked up by digest, so the time a lookup takes says nothing about a stored token's prefix.
    return hashlib.sha256(token.encode()).digest()


class LabelerTokens:
    """Maps bearer tokens to labeler ids.

    Parameters
    ----------
    tokens : token -> labeler id.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._by_digest = {_digest(t): labeler for t, labeler in tokens.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    def labeler(self, authorization: str | None) -> str | None:
        """The labeler id of an ``Authorization`` header's bearer token; ``None`` if it has none or an unknown one."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._by_digest.get(_digest(token.strip()))


def parse_tokens(text: str, source: str = "tokens file") -> LabelerTokens:
    """Read ``<token> <labeler id>`` lines. Raises :class:`TokenFileError` naming the line and what is wrong."""
    tokens: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TokenFileError(f"{source}, line {n}: expected '<token> <labeler id>', got {len(parts)} field(s)")
        token, labeler = parts
        if not (token.isascii() and token.isprintable()):
            # (HTTP headers arrive as ISO-8859-1: a client sending this token's UTF-8 would never match it)
            raise TokenFileError(f"{source}, line {n}: token has characters other than printable ASCII (labeler {labeler!r})")
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenFileError(f"{source}, line {n}: token shorter than {MIN_TOKEN_CHARS} characters (labeler {labeler!r})")
        reserved = reserved_problem(labeler)
        if reserved is not None:
            raise TokenFileError(f"{source}, line {n}: labeler id {reserved}")
        if token in tokens:
            raise TokenFileError(f"{source}, line {n}: the token of labeler {labeler!r} is already given to {tokens[token]!r}")
        tokens[token] = labeler
    if not tokens:
        raise TokenFileError(f"{source}: no tokens (an empty file would lock every labeler out)")
    return LabelerTokens(tokens)


def load_tokens(path: str) -> LabelerTokens:
    """:func:`parse_tokens` of the file at ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise TokenFileError(f"tokens file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"tokens file {path}: not UTF-8") from None
    return parse_tokens(text, f"tokens file {path}")


class TokenFile:
    """The tokens of a file, read again when the file changes (size, modification time, or the file itself).

    A change that does not parse (or a file gone) keeps the tokens read before, with an
    error in the log: a half-written edit must not lock every labeler out, nor let anyone in.

    Parameters
    ----------
    path : the tokens file; it must parse now (:class:`TokenFileError` otherwise).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._tokens = load_tokens(path)

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        # The inode too: a file replaced atomically (renamed over, or a Kubernetes secret's
        # symlink swap) by one of the same size within the filesystem's timestamp granularity
        # (1 s or 2 s on some) would otherwise keep a revoked token valid.
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _current(self) -> LabelerTokens:
        stamp = self._stat()
        if stamp == self._stamp:
            return self._tokens
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._tokens = load_tokens(self.path)
                    log.info("labeler tokens re-read from %s: %d token(s)", self.path, len(self._tokens))
                except TokenFileError as exc:
                    log.error("%s; keeping the %d token(s) read before", exc, len(self._tokens))
        return self._tokens

    def __len__(self) -> int:
        return len(self._current())

    def labeler(self, authorization: str | None) -> str | None:
        """As :meth:`LabelerTokens.labeler`, with the file as it is now."""
        return self._current().labeler(authorization)


class FailureLimiter:
    """Rate limit on failed token checks, per client address (a token bucket of failures).

    Each client address may fail ``burst`` checks at once, then one every ``1 / per_second``
    seconds. Over that, :meth:`wait` says how long the client must wait, and the API refuses
    its requests (429) without checking their token at all: a guess made then tells nothing,
    right or wrong. A labeler who mistypes a token a few times is not held up.

    Parameters
    ----------
    burst : failures allowed at once.
    per_second : failures allowed per second after the burst.
    max_clients : addresses remembered (the least recently failing are forgotten first).
    clock : seconds, monotonic.
    """

    def __init__(self, burst: int = 10, per_second: float = 1.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.per_second, self.max_clients, self.clock = float(burst), per_second, max_clients, clock
        self._lock = threading.Lock()
        self._debt: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (failures owed, when)

    def _owed(self, client: str, now: float) -> float:
        owed, when = self._debt.get(client, (0.0, now))
        return max(0.0, owed - (now - when) * self.per_second)

    def wait(self, client: str) -> float:
        """Seconds ``client`` must wait before its token is checked again (0: check it now)."""
        with self._lock:
            return max(0.0, (self._owed(client, self.clock()) + 1 - self.burst) / self.per_second)

    def failed(self, client: str) -> None:
        """Count a failed token check of ``client``."""
        with self._lock:
            now = self.clock()
            self._debt[client] = (self._owed(client, now) + 1, now)
            self._debt.move_to_end(client)
            while len(self._debt) > self.max_clients:
                self._debt.popitem(last=False)
