"""Fuzzed records and HTTP requests for the faults benchmark (:mod:`benchmarks.faults`).

Records are near-valid (a valid item or label, mutated: cut, bytes flipped, fields of the
wrong type, the issue's triggers) or arbitrary bytes; only those the product's own decoders
do not accept as valid are kept (a record that decodes is no bad record), so every one
must end as a dead letter. Requests are random methods, paths, query strings and bodies
against the labeler API.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import numpy as np

from activestream.schemas import DecodeError, Item, Label, decode_items, decode_label

# The triggers: each made a service fail for good before.
TRIGGERS: list[bytes] = [
    b"[" * 100_000,
    b'{"id": "deep", "features": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"id": "big", "features": [' + b"9" * 5000 + b', 1, 2, 3, 4, 5, 6, 7]}',
    b'{"id": "ps-\\ud800", "features": [1, 2, 3, 4, 5, 6, 7, 8]}',
    b'{"id": ["x"], "features": [1, 2, 3, 4, 5, 6, 7, 8]}',
    b'{"id": "nan", "features": [NaN, 1, 2, 3, 4, 5, 6, 7]}',
    b'{"id": "inf", "features": [1e999, 1, 2, 3, 4, 5, 6, 7]}',
    b"\xff\xfe\x00garbage",
    b"",
    b"null",
]

_WRONG = [None, True, -1, 1e308, "", "x" * 300, [], {}, [None], ["a"], {"a": 1}, "\ud800", 2**70]


def _mutate(rng: random.Random, good: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # cut
        return good[: rng.randrange(len(good))]
    if kind == 1:  # bytes flipped
        b = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:  # arbitrary bytes
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    obj = json.loads(good)
    key = rng.choice(sorted(obj))
    if kind == 3:  # a field of the wrong type
        obj[key] = rng.choice(_WRONG)
    elif kind == 4:  # a field missing
        del obj[key]
    else:  # a trigger
        return rng.choice(TRIGGERS)
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5, allow_nan=True).encode("utf-8", "surrogatepass")


def _item_is_bad(value: bytes, n_features: int) -> bool:
    try:
        return bool(decode_items([value], n_features=n_features).errors)
    except Exception:  # noqa: BLE001 - a decoder that raises anything else: a poison record, bad by definition
        return True


def _label_is_bad(value: bytes) -> bool:
    try:
        decode_label(value)
    except DecodeError:
        return True
    except Exception:  # noqa: BLE001 - as above
        return True
    return False


def bad_records(n: int, n_features: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` records, about half items and half labels: ``[("items" | "labels", value), ...]``, each rejected by its decoder."""
    rng = random.Random(seed)
    x = np.random.default_rng(seed).standard_normal(n_features).astype(np.float32)
    good: dict[str, Callable[[int], bytes]] = {
        "items": lambda i: Item(f"fz{i}", x).encode(),
        "labels": lambda i: Label(f"fz{i}", f"fzl{i}", "fuzzer", label=1, features=x, ts=1.7e9).encode(),
    }
    check: dict[str, Callable[[bytes], bool]] = {"items": lambda v: _item_is_bad(v, n_features), "labels": _label_is_bad}
    out: list[tuple[str, bytes]] = []
    i = 0
    while len(out) < n:
        topic = "items" if i % 2 == 0 else "labels"
        value = _mutate(rng, good[topic](i))
        if check[topic](value):
            out.append((topic, value))
        i += 1
    return out


def http_requests(n: int, seed: int = 0) -> list[tuple[str, str, bytes]]:
    """``n`` ``(method, path with query, body)`` requests for the labeler API, mostly malformed."""
    rng = random.Random(seed)
    paths = ["/lease", "/labels", "/skip", "/status", "/", "/nope", "/labels/", "//lease", "/lease/../status"]
    queries = ["", "?k=1", "?k=0", "?k=100000", "?k=abc", "?labeler=a", "?labeler=%ED%A0%80", "?labeler=dispatch%3Alabelers&k=2",
               "?k=1&labeler=auto", "?k=1e308", "?%%%"]
    fields = ["item_id", "labeler_id", "label", "labels", "seconds", "label_id"]
    out = []
    for _ in range(n):
        method = rng.choice(["GET", "POST", "POST", "PUT", "DELETE"])
        path = rng.choice(paths) + rng.choice(queries)
        body: bytes
        kind = rng.randrange(4)
        if kind == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        elif kind == 1:
            body = rng.choice([b"[" * 10_000, b"{", b"null", b"[]", b'"x"', b"1e999", b'{"item_id": "\\ud800", "labeler_id": "a", "label": 1}'])
        else:
            obj = {f: rng.choice([*_WRONG, "it1", "ann", 1, 0.5]) for f in rng.sample(fields, rng.randint(0, len(fields)))}
            body = json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")
        out.append((method, path, body))
    return out
