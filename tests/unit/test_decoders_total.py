"""Every decoder is total: for any bytes it returns a record or raises DecodeError, never anything else.

Property-based (hypothesis, bounded examples) over arbitrary bytes and over near-valid records:
valid records of each kind with fields replaced by hostile values (huge integers, lone
surrogates, deep nesting, NaN, wrong types), serialized as a producer might. A record a decoder
accepts must encode again and decode to itself (see ``tests/fuzz/targets.py``, which the
fuzzer ``tests/fuzz/fuzz_decoders.py`` shares).
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activestream.retrainer.control_log import ControlObservation
from activestream.schemas import (
    RAW_ITEM_MAGIC,
    DeadLetter,
    DecodeError,
    Item,
    ModelVersion,
    decode_dead_letter,
    decode_item,
    decode_items,
    decode_label,
    decode_model_version,
    decode_queue_entry,
    decode_skip,
)
from activestream.schemas.wire_b64 import CANONICAL_HEAD, CANONICAL_MID, CANONICAL_TAIL
from tests.fuzz.targets import BATCH_SEPARATOR, DECODERS, check

# A failing example holding DEEP (100 kB) would be reported behind hypothesis's warning about its long repr.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

# The triggers of issue 18: each stopped a service for good.
DEEP = b"[" * 100_000
HUGE_INT = b'{"id":"a","features":[' + b"9" * 5000 + b"]}"
LONE_SURROGATE_ID = json.dumps({"id": "ps-\ud800", "features": [1.0, 2.0, 3.0]}).encode()

# JSON text a producer may send that json.dumps cannot write (or that is not JSON at all).
RAW_FRAGMENTS = [
    "9" * 5000, "-" + "9" * 4400, "9" * 400, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "[" * 3000 + "]" * 3000,
    '"\\ud800"', '"ps-\\udfff"', '"\\udc00\\ud800"', '{"a":' * 40 + "1" + "}" * 40, "9223372036854775808", "-9223372036854775809",
    "1e308", "5e-324", '"' + "x" * 600 + '"', "[" + ",".join(["1"] * 50) + "]",
]
NASTY = [None, True, False, 0, -1, 2.5, -0.0, "", "x", "\x00", "ünï", [], {}, [[1]], {"k": []}, [None], ["a", 1], 2**63 - 1, -(2**63)]
_RAW = "\x00raw{}\x00"


def nasty_values() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(NASTY).map(copy.deepcopy), st.sampled_from([_RAW.format(i) for i in range(len(RAW_FRAGMENTS))]),
                     st.text(max_size=8), st.integers(), st.floats(), st.lists(st.integers(), max_size=3))


def serialize(obj: Any, ascii_only: bool) -> bytes:
    """``obj`` as JSON, with the raw fragments put in where their markers are."""
    text = json.dumps(obj, ensure_ascii=ascii_only)
    for i, frag in enumerate(RAW_FRAGMENTS):
        text = text.replace(json.dumps(_RAW.format(i), ensure_ascii=ascii_only), frag)
    return text.encode("utf-8", "surrogatepass")  # (a lone surrogate as UTF-8 bytes, as a careless producer writes it)


def _b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


ONNX = b"not really onnx"
VALID: dict[str, dict[str, Any]] = {
    "item": {"schema": "item.v1", "id": "i1", "features": [1.0, 2.0, 3.0], "metadata": {"src": "cam", "n": [1, {"a": None}]}},
    "item_b64": {"schema": "item.v1", "id": "i2", "features_b64": _b64([1.0, 2.0, 3.0])},
    "item_named": {"id": 7, "features": {"a": 1, "b": 2.5, "c": -3}},
    "label": {"schema": "label.v1", "item_id": "i1", "label_id": "l1", "labeler_id": "ann", "label": 1, "seconds": 2.0,
              "source": "human", "ts": 1.5e9, "control": True, "features_b64": _b64([1.0, 2.0, 3.0])},
    "labels": {"item_id": "i1", "label_id": "l1", "labeler_id": "ann", "labels": ["cat", "dog"], "features": [1.0, 2.0, 3.0]},
    "skip": {"schema": "skip.v1", "item_id": "i1", "labeler_id": "ann", "ts": 1.5e9},
    "model_version": {"schema": "model_version.v1", "version": 3, "sha256": ModelVersion.digest(ONNX), "classes": [0, 1],
                      "task": "multiclass", "metrics": {"auto_accept_threshold": 0.9}, "n_labels": 10, "label_ids_digest": "ab",
                      "created_at": 1.5e9, "onnx_b64": base64.b64encode(ONNX).decode()},
    "model_uri": {"version": 1, "sha256": "0" * 64, "classes": ["a"], "artifact_uri": "file:///tmp/m.onnx"},
    "queue_entry": {"schema": "queue_entry.v1", "id": "i1", "score": 0.5, "model_version": 2, "features": [1.0, 2.0],
                    "lease_expires_at": 1.5e9, "metadata": {"a": 1}},
    "dead_letter": {"schema": "dead_letter.v1", "source": "items", "reason": "bad", "item_id": "i1", "field": "features",
                    "ts": 1.5e9, "payload": "{}"},
    "dead_letter_b64": {"source": "items", "reason": "bad", "item_id": None, "field": None, "payload_b64": "AAEC"},
    "control": {"label_id": "l1", "confidence": 0.75, "correct": True, "version": 2},
}
LISTS = ("features", "labels", "classes")  # list fields a value inside of which gets replaced too
OBJECTS = ("metadata", "metrics", "features")


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid record of some kind with a few fields replaced, removed or added."""
    obj = json.loads(json.dumps(VALID[draw(st.sampled_from(sorted(VALID)))]))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*obj, "id", "item_id", "metadata", "extra"]))
        how = draw(st.sampled_from(["replace", "replace", "inside", "remove"]))
        if how == "remove":
            obj.pop(name, None)
        elif how == "inside" and isinstance(obj.get(name), list) and obj[name] and name in LISTS:
            obj[name][draw(st.integers(0, len(obj[name]) - 1))] = draw(nasty_values())
        elif how == "inside" and isinstance(obj.get(name), dict) and name in OBJECTS:
            obj[name][draw(st.sampled_from([*obj[name], "z"]))] = draw(nasty_values())
        else:
            obj[name] = draw(nasty_values())
    return serialize(obj, draw(st.booleans()))


@st.composite
def raw_items(draw: st.DrawFn) -> bytes:
    """Raw-layout and canonical binary items, valid or broken at the byte level."""
    ident = draw(st.one_of(st.text(min_size=1, max_size=6).map(str.encode), st.binary(max_size=6),
                           st.sampled_from([b"\xed\xa0\x80", b"ps-\xed\xbf\xbf", b"x" * 513, b""])))
    vec = np.asarray(draw(st.lists(st.floats(width=32), max_size=4)), dtype="<f4").tobytes()
    n = draw(st.sampled_from([len(vec) // 4, len(vec) // 4 + 1, 2**32 - 1]))
    if draw(st.booleans()):
        payload = RAW_ITEM_MAGIC + (len(ident) % 2**16).to_bytes(2, "little") + ident + n.to_bytes(4, "little") + vec
    else:
        payload = CANONICAL_HEAD + ident + CANONICAL_MID + base64.b64encode(vec) + CANONICAL_TAIL
    cut = draw(st.integers(0, len(payload)))
    return payload[:cut] + draw(st.binary(max_size=3)) + payload[cut:] if draw(st.booleans()) else payload


any_payload = st.one_of(st.binary(max_size=200), near_valid(), raw_items(),
                        st.sampled_from([DEEP, HUGE_INT, LONE_SURROGATE_ID, b"", b"{}", b"[]", b"null", b'"\\ud800"', b"\xff\xfe"]))
_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_settings
@given(st.binary(max_size=300), st.sampled_from(sorted(set(DECODERS) - {"items"})))
def test_every_decoder_is_total_on_arbitrary_bytes(payload: bytes, name: str) -> None:
    check(name, payload)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(near_valid())
def test_every_decoder_is_total_on_near_valid_records(payload: bytes) -> None:
    for name in DECODERS:
        check(name, payload)


@_settings
@given(raw_items())
def test_the_item_decoders_are_total_on_broken_binary_items(payload: bytes) -> None:
    for name in ("item", "item_n3", "items"):
        check(name, payload)


@_settings
@given(st.lists(any_payload, max_size=8))
def test_the_batch_decoder_is_total(payloads: list[bytes]) -> None:
    check("items", BATCH_SEPARATOR.join(payloads))


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("payload", [DEEP, HUGE_INT, LONE_SURROGATE_ID], ids=["deep", "huge-int", "lone-surrogate"])
def test_the_issue_triggers_are_decode_errors(name: str, payload: bytes) -> None:
    check(name, payload)  # (before issue 18: RecursionError, ValueError, and a record holding "ps-\ud800")


def test_the_issue_triggers_name_the_item_field_and_reason() -> None:
    with pytest.raises(DecodeError) as info:
        decode_item(DEEP, key="k1")
    assert (info.value.item_id, info.value.field) == ("k1", None) and "nested too deeply" in info.value.reason
    with pytest.raises(DecodeError) as info:
        decode_item(HUGE_INT, key="k2")
    assert info.value.item_id == "k2" and "not valid JSON" in info.value.reason and "4300 digits" in info.value.reason
    with pytest.raises(DecodeError) as info:
        decode_item(LONE_SURROGATE_ID, key="k3")
    assert (info.value.item_id, info.value.field) == ("k3", "id") and "lone surrogate" in info.value.reason
    batch = decode_items([DEEP, HUGE_INT, LONE_SURROGATE_ID, Item("ok", np.ones(3, np.float32)).encode(binary=True)], keys=["a", "b", "c", "d"])
    assert batch.ids == ["ok"] and [(pos, err.item_id) for pos, err in batch.errors] == [(0, "a"), (1, "b"), (2, "c")]


def test_utf8_bytes_of_a_surrogate_are_not_text() -> None:
    payload = b'{"id":"ps-\xed\xa0\x80","features":[1.0]}'  # json.loads takes these ("surrogatepass")
    with pytest.raises(DecodeError, match="not UTF-8"):
        decode_item(payload)
    assert decode_items([payload]).errors[0][1].reason.startswith("not valid JSON")


@pytest.mark.parametrize(
    ("decoder", "payload", "field", "reason"),
    [
        (decode_label, {**VALID["label"], "label": 2**64}, "label", "must fit 64 bits"),  # (the retrainer's ONNX export would fail on it)
        (decode_label, {**VALID["label"], "labeler_id": "\ud800"}, "labeler_id", "lone surrogate"),
        (decode_label, {**VALID["label"], "seconds": _RAW.format(3)}, "seconds", "not a finite number"),
        (decode_label, {**VALID["label"], "ts": "yesterday"}, "ts", "expected a number"),
        (decode_label, {**VALID["label"], "control": "yes"}, "control", "true or false"),
        (decode_skip, {**VALID["skip"], "ts": _RAW.format(2)}, "ts", "beyond float64"),
        (decode_item, {**VALID["item"], "metadata": {"x": _RAW.format(5)}}, "metadata", "JSON cannot carry"),
        (decode_item, {**VALID["item"], "metadata": json.loads('{"a":' * 40 + "1" + "}" * 40)}, "metadata", "levels deep"),
        (decode_model_version, {**VALID["model_version"], "n_labels": "zz"}, "n_labels", "expected an integer"),
        (decode_model_version, {**VALID["model_version"], "metrics": {"auto_accept_threshold": "high"}},
         "metrics.auto_accept_threshold", "expected a number"),
        (decode_model_version, {**VALID["model_version"], "classes": [{"a": 1}]}, "classes[0]", "string or integer class"),
        (decode_model_version, {**VALID["model_version"], "created_at": None}, "created_at", "expected a number"),
        (decode_model_version, {**VALID["model_version"], "artifact_uri": 5}, "artifact_uri", "expected a string"),
        (decode_queue_entry, {**VALID["queue_entry"], "score": _RAW.format(2)}, "score", "beyond float64"),
        (decode_queue_entry, {**VALID["queue_entry"], "metadata": [1]}, "metadata", "JSON object"),
        (decode_dead_letter, {**VALID["dead_letter"], "payload_b64": 5}, "payload_b64", "expected a string"),
        (ControlObservation.decode, {**VALID["control"], "confidence": _RAW.format(2)}, "confidence", "beyond float64"),
        (ControlObservation.decode, {**VALID["control"], "correct": 1}, "correct", "true or false"),
    ],
)
def test_bad_field_types_are_decode_errors_naming_the_field(decoder: Any, payload: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decoder(serialize(payload, True))
    assert not info.value.unexpected and info.value.field == field and reason in info.value.reason, info.value


def test_a_dead_letter_of_an_unreadable_id_still_has_a_key() -> None:
    dl = DeadLetter("items", "bad", b"x", item_id="ps-\ud800")
    assert dl.key == b"ps-\\ud800" and decode_dead_letter(dl.encode()).item_id == "ps-\\ud800"


def test_a_batch_the_fast_paths_fail_on_is_decoded_one_payload_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from activestream.schemas import batch

    payloads = [Item(f"i{i}", np.full(3, i, np.float32)).encode(raw=True) for i in range(5)] + [DEEP, b'{"id":"j","features":[1,2,3]}']
    want = decode_items(payloads, keys=[f"k{i}" for i in range(7)])

    def broken(*args: object) -> None:
        raise IndexError("a fast path's bug")

    monkeypatch.setattr(batch, "_decode_items", broken)
    got = decode_items(payloads, keys=[f"k{i}" for i in range(7)])
    assert got.ids == want.ids == [f"i{i}" for i in range(5)] + ["j"] and got.index == want.index
    assert np.array_equal(got.features, want.features)
    assert [(p, e.item_id, e.reason) for p, e in got.errors] == [(p, e.item_id, e.reason) for p, e in want.errors] == [(5, "k5", want.errors[0][1].reason)]
