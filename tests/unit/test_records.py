"""Message contracts: round trips, schema conformance, and errors that name item, field and reason."""

from __future__ import annotations

import json
import re

import jsonschema
import numpy as np
import pytest

from activestream.schemas import (
    SCHEMA_NAMES,
    DeadLetter,
    DecodeError,
    Item,
    Label,
    ModelVersion,
    QueueEntry,
    decode_dead_letter,
    decode_item,
    decode_label,
    decode_model_version,
    decode_queue_entry,
    json_schema,
)
from activestream.schemas.label import SOURCES


def validate(payload: bytes, name: str) -> None:
    jsonschema.validate(json.loads(payload), json_schema(name))


def test_every_schema_file_is_valid_json_schema() -> None:
    for name in SCHEMA_NAMES:
        jsonschema.Draft202012Validator.check_schema(json_schema(name))


@pytest.mark.parametrize("binary", [False, True])
def test_item_round_trip(binary: bool) -> None:
    item = Item("a1", np.array([1.5, -2.0, 0.0], dtype=np.float32), {"src": "cam-1"})
    payload = item.encode(binary=binary)
    validate(payload, "item.v1")
    back = decode_item(payload, n_features=3)
    assert back.id == "a1" and back.metadata == {"src": "cam-1"}
    np.testing.assert_array_equal(back.features, item.features)


def test_named_field_item() -> None:
    payload = json.dumps({"id": 7, "features": {"b": 2, "a": 1}}).encode()
    validate(payload, "item.v1")
    item = decode_item(payload, feature_names=["a", "b"])
    assert item.id == "7"
    np.testing.assert_array_equal(item.features, [1, 2])
    with pytest.raises(DecodeError, match=r"item '7': field 'features.c': missing"):
        decode_item(payload, feature_names=["a", "c"])
    # a bad value is named by its name, not by its place in the configured order (features[1] named nothing the user wrote)
    for value, reason in (('"high"', "not a number ('high')"), ("1e39", "not a finite float32 number (1.000e+39)")):
        bad = b'{"id": 8, "features": {"hue": ' + value.encode() + b', "a": 1}}'
        with pytest.raises(DecodeError, match=re.escape(f"item '8': field 'features.hue': {reason}")):
            decode_item(bad, feature_names=["a", "hue"])


@pytest.mark.parametrize(
    ("payload", "item_id", "field", "reason"),
    [
        (b"{not json", None, None, "not valid JSON"),
        (b"[1, 2]", None, None, "expected a JSON object"),
        (b'{"features": [1, 2, 3]}', None, "id", "missing"),
        (b'{"id": "x", "features": [1, 2]}', "x", "features", "expected 3 values, got 2"),
        (b'{"id": "x", "features": [1, NaN, 3]}', "x", "features[1]", "not a finite number"),
        (b'{"id": "x", "features": [1, "a", 3]}', "x", "features[1]", "not a number"),
        (b'{"id": "x", "features": [1, 2, 1e39]}', "x", "features[2]", "not a finite float32 number"),
        (b'{"id": "x", "features": [1, 2, 1' + b"0" * 400 + b']}', "x", "features[2]", "an integer of 401 digits"),
        (b'{"id": "x"}', "x", "features", "missing"),
        (b'{"id": "x", "features_b64": "!!"}', "x", "features_b64", "not valid base64"),
        # (the contract's "schema" const and its oneOf features / features_b64: both were accepted)
        (b'{"schema": "item.v9", "id": "x", "features": [1, 2, 3]}', "x", "schema", "expected 'item.v1' (or none), got 'item.v9'"),
        (b'{"id": "x", "features": [1, 2, 3], "features_b64": "AACAPwAAAEAAAEBA"}', "x", "features",
         "give either features or features_b64, not both"),
    ],
)
def test_bad_items_name_item_field_reason(payload: bytes, item_id: str | None, field: str | None, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_item(payload, n_features=3)
    err = info.value
    assert err.item_id == item_id and err.field == field and reason in err.reason
    assert reason in str(err)
    if item_id:
        assert repr(item_id) in str(err)


def test_key_names_item_without_readable_id() -> None:
    with pytest.raises(DecodeError) as info:
        decode_item(b"garbage", key="k-9")
    assert info.value.item_id == "k-9" and "item 'k-9'" in str(info.value)


def test_label_round_trip_single_and_multi() -> None:
    one = Label("i1", "L1", "ann", label=3, seconds=4.5, features=np.array([1.0, 2.0], dtype=np.float32))
    validate(one.encode(), "label.v1")
    back = decode_label(one.encode())
    assert (back.item_id, back.label_id, back.label, back.seconds) == ("i1", "L1", 3, 4.5)
    np.testing.assert_array_equal(back.features, [1.0, 2.0])
    multi = Label("i2", "L2", "ann", labels=("cat", "dog"))
    validate(multi.encode(), "label.v1")
    assert decode_label(multi.encode()).labels == ("cat", "dog")


def test_every_field_a_label_writes_is_in_its_schema() -> None:
    # (a docs audit: audit answers wrote "audit" and "audited_label", which the contract page did not list)
    full = Label("i1", "L1", "ann", label="cat", seconds=2.0, features=np.array([1.0], dtype=np.float32), source="auto", control=True,
                 model_version=3, confidence=0.99, threshold=0.95, audit=True, audited_label="dog")
    written = json.loads(full.encode())
    validate(full.encode(), "label.v1")
    assert set(written) <= set(json_schema("label.v1")["properties"]), set(written) - set(json_schema("label.v1")["properties"])
    assert decode_label(full.encode()).audited_label == "dog"


def test_a_label_source_is_one_the_contract_lists() -> None:
    assert json_schema("label.v1")["properties"]["source"]["enum"] == list(SOURCES)
    with pytest.raises(DecodeError, match="field 'source': unknown source 'crowd'; expected one of human, simulated, auto, baseline"):
        decode_label(b'{"item_id": "a", "labeler_id": "x", "label_id": "l", "label": 1, "source": "crowd"}')
    assert decode_label(b'{"item_id": "a", "labeler_id": "x", "label_id": "l", "label": 1}').source == "human"


def test_bad_label() -> None:
    with pytest.raises(DecodeError, match="field 'label_id'"):
        decode_label(b'{"item_id": "a", "labeler_id": "x", "label": 1}')
    with pytest.raises(DecodeError, match="field 'label'"):
        decode_label(b'{"item_id": "a", "labeler_id": "x", "label_id": "l"}')
    with pytest.raises(DecodeError, match="field 'seconds'"):
        decode_label(b'{"item_id": "a", "labeler_id": "x", "label_id": "l", "label": 1, "seconds": -1}')


def test_model_version_round_trip_and_sha_check() -> None:
    blob = b"\x08\x01onnx-bytes"
    mv = ModelVersion(3, blob, ModelVersion.digest(blob), ("a", "b"), metrics={"holdout_accuracy": 0.9}, n_labels=12)
    validate(mv.encode(), "model_version.v1")
    back = decode_model_version(mv.encode())
    assert back.onnx == blob and back.classes == ("a", "b") and back.version == 3 and back.n_labels == 12
    tampered = json.loads(mv.encode())
    tampered["sha256"] = "0" * 64
    with pytest.raises(DecodeError, match="does not match"):
        decode_model_version(json.dumps(tampered))


def test_queue_entry_and_dead_letter_round_trip() -> None:
    qe = QueueEntry("q", 0.7, 2, np.array([1.0], dtype=np.float32), 123.0)
    validate(qe.encode(), "queue_entry.v1")
    back = decode_queue_entry(qe.encode())
    assert (back.id, back.score, back.model_version, back.lease_expires_at) == ("q", 0.7, 2, 123.0)
    dl = DeadLetter.from_error("t.items", b"\xff\x00", DecodeError("x", "features[2]", "not a finite number"))
    validate(dl.encode(), "dead_letter.v1")
    back_dl = decode_dead_letter(dl.encode())
    assert back_dl.payload == b"\xff\x00" and back_dl.item_id == "x" and dl.reason_code == "features"


def test_float32_extremes_are_accepted_as_numpy_prints_them() -> None:
    item = decode_item(b'{"id": "x", "features": [3.4028235e+38, -3.4028235e+38, 1e-45]}', n_features=3)
    assert np.isfinite(item.features).all() and item.features[0] == np.finfo(np.float32).max


def test_label_values_convert_to_the_campaigns_type_when_they_can() -> None:
    from activestream.schemas import coerce_label_value

    assert [coerce_label_value(v, "integers") for v in (3, "3", " -7 ", "cat", "3-", "--3", "", "1.5")] == [3, 3, -7, None, None, None, None, None]
    assert [coerce_label_value(v, "strings") for v in (3, "cat")] == ["3", "cat"]


def test_skip_round_trip_and_errors() -> None:
    from activestream.schemas import Skip, decode_skip

    payload = Skip("i-7", "ann", ts=5.0).encode()
    validate(payload, "skip.v1")
    assert decode_skip(payload) == Skip("i-7", "ann", 5.0)
    with pytest.raises(DecodeError) as err:
        decode_skip(b'{"item_id": "i-7"}')
    assert (err.value.item_id, err.value.field) == ("i-7", "labeler_id")
    with pytest.raises(DecodeError) as err:
        decode_skip(b'{"labeler_id": "ann"}', key="k1")
    assert (err.value.item_id, err.value.field) == ("k1", "item_id")


def test_a_dead_letter_keeps_a_bounded_part_of_a_huge_message() -> None:
    # A 2 MB junk record must not make a dead letter the broker refuses (its 1 MB default).
    from activestream.schemas import MAX_DEAD_LETTER_PAYLOAD

    junk = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    dl = DeadLetter.from_error("t.items", junk, DecodeError(None, None, "not valid JSON"))
    out = dl.encode()
    validate(out, "dead_letter.v1")
    assert len(out) < 1_000_000 and json.loads(out)["payload_bytes"] == len(junk)
    assert decode_dead_letter(out).payload == junk[:MAX_DEAD_LETTER_PAYLOAD]
    for text_junk in (b"\x00" * 900_000, "\u00e9".encode() * 450_000):  # valid UTF-8 that JSON escapes 3-6 fold
        out = DeadLetter.from_error("t.items", text_junk, DecodeError(None, None, "not valid JSON")).encode()
        assert len(out) < 400_000 and decode_dead_letter(out).payload == text_junk[:MAX_DEAD_LETTER_PAYLOAD]
    small = DeadLetter.from_error("t.items", b"{bad", DecodeError(None, None, "not valid JSON")).encode()
    assert "payload_bytes" not in json.loads(small) and decode_dead_letter(small).payload == b"{bad"


def test_an_over_long_record_key_is_not_repeated_whole_in_the_error_and_the_log() -> None:
    # A security audit: an item record keyed by 70,000 characters (Kafka takes keys up to its 1 MB record limit) was
    # logged by the scorer as one 70,137-character warning line: one such line per hostile record.
    from activestream.schemas import DecodeError

    err = DecodeError("k" * 70_000, "id", "must be 1 to 512 characters")
    assert len(str(err)) < 400 and "the first 200 of 70000 characters" in str(err)
    assert err.item_id == "k" * 70_000  # (the dead letter still names the record's key)
    assert str(DecodeError("short", "id", "x")) == "item 'short': field 'id': x"
