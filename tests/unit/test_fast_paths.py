"""The scorer's fast paths give exactly what the plain paths give: batch item decoding, CRC-64."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activestream.rankedqueue.dump import crc64
from activestream.schemas import RAW_ITEM_MAGIC, DecodeError, Item, decode_item, decode_items

_POLY = 0x95AC9329AC4BC9B5


def crc64_reference(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
    return crc


def test_crc64_matches_redis_check_value_and_a_bitwise_reference() -> None:
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA  # Redis's crc64.c test vector
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 1023, 1024, 1025, 5000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc64(data) == crc64_reference(data), n


def _expected(payloads: list[bytes], n_features: int | None) -> tuple[list[tuple[int, str, list[float], dict]], list[tuple[int, str | None, str | None, str]]]:
    ok, bad = [], []
    dim = n_features
    for i, p in enumerate(payloads):
        try:
            item = decode_item(p, n_features=dim, key=f"k{i}")
        except DecodeError as e:
            bad.append((i, e.item_id, e.field, e.reason))
            continue
        if dim is None:
            dim = item.features.size
        ok.append((i, item.id, item.features.tolist(), item.metadata))
    return ok, bad


_ids = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["a", 'q"uote', "back\\slash", "ctl\x01", "x" * 513, "ünï", "\u2028"]))
_vectors = st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=0, max_size=5)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    item_id = draw(_ids)
    vec = np.array(draw(_vectors), dtype=np.float32)
    kind = draw(st.sampled_from(["binary", "binary", "list", "metadata", "garbled-b64", "odd-bytes", "not-json", "int-id",
                                 "raw", "raw", "raw-truncated", "raw-count", "raw-utf8"]))
    ident = item_id.encode()
    raw = RAW_ITEM_MAGIC + len(ident).to_bytes(2, "little") + ident + vec.size.to_bytes(4, "little") + vec.astype("<f4").tobytes()
    if kind == "raw":  # built by hand: the encoder would refuse the over-long ids the decoder must reject
        return raw
    if kind == "raw-truncated":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "raw-count":
        return raw + b"\x00\x00"
    if kind == "raw-utf8":
        return RAW_ITEM_MAGIC + b"\x01\x00\xff" + (1).to_bytes(4, "little") + b"\x00\x00\x80?"
    if kind == "binary":
        return Item(item_id, vec).encode(binary=True)
    if kind == "list":
        return json.dumps({"id": item_id, "features": [float(v) for v in vec if np.isfinite(v)]}).encode()
    if kind == "metadata":
        return Item(item_id, vec, {"m": 1}).encode(binary=True)
    if kind == "garbled-b64":
        return b'{"schema":"item.v1","id":"g","features_b64":"' + base64.b64encode(vec.tobytes())[:-1] + b'=="}'
    if kind == "odd-bytes":
        return b'{"schema":"item.v1","id":"o","features_b64":"' + base64.b64encode(b"\x00" * 5) + b'"}'
    if kind == "int-id":
        return json.dumps({"id": 7, "features": [1.0, 2.0]}).encode()
    return b"{nope"


@settings(max_examples=200, deadline=None)
@given(st.lists(payloads(), min_size=0, max_size=12), st.sampled_from([None, 2, 3]))
def test_decode_items_equals_decode_item_one_by_one(batch: list[bytes], n_features: int | None) -> None:
    got = decode_items(batch, n_features=n_features, keys=[f"k{i}" for i in range(len(batch))])
    ok, bad = _expected(batch, n_features)
    assert [(i, x, f.tolist(), m) for i, x, f, m in zip(got.index, got.ids, got.features, got.metadata, strict=True)] == ok
    assert [(i, e.item_id, e.field, e.reason) for i, e in got.errors] == bad
    assert got.features.dtype == np.float32


def test_raw_items_round_trip_and_name_what_is_wrong() -> None:
    x = np.array([0.5, -2.0, 3.25], dtype=np.float32)
    p = Item("item-1", x).encode(raw=True)
    assert p.startswith(RAW_ITEM_MAGIC) and len(p) == 4 + 2 + 6 + 4 + 12
    got = decode_item(p)
    assert got.id == "item-1" and got.features.tolist() == x.tolist() and got.metadata == {}
    batch = decode_items([p, Item("item-2", x).encode(binary=True), p[:-3]], keys=["k0", "k1", "k2"])
    assert batch.ids == ["item-1", "item-2"]
    assert [(i, e.item_id, e.field) for i, e in batch.errors] == [(2, "item-1", "features")]
    with pytest.raises(DecodeError) as err:
        decode_item(p[:9], key="key-9")
    assert (err.value.item_id, err.value.field) == ("key-9", "payload")
    with pytest.raises(DecodeError) as err:
        decode_item(p, n_features=4)
    assert (err.value.item_id, err.value.field, err.value.reason) == ("item-1", "features", "expected 4 values, got 3")
    with pytest.raises(ValueError, match="no metadata"):
        Item("m", x, {"a": 1}).encode(raw=True)


@st.composite
def uniform_raw_batches(draw: st.DrawFn) -> list[bytes]:
    """Raw items of one size, half of them all valid, the rest with one defect in one item."""
    kind_of_id = draw(st.sampled_from(["ascii1", "ascii12", "ascii513", "e-acute257"]))
    dim = draw(st.integers(1, 4))
    n = draw(st.integers(1, 6))
    ascii_ids = st.text(alphabet="aZ0-\x00", min_size=1, max_size=1)
    out = []
    for _ in range(n):
        if kind_of_id == "e-acute257":  # 514 bytes but 257 characters: valid
            ident = ("\u00e9" * 257).encode()
        else:
            size = {"ascii1": 1, "ascii12": 12, "ascii513": 513}[kind_of_id]
            ident = "".join(draw(st.lists(ascii_ids, min_size=size, max_size=size))).encode()
        vec = np.array(draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=dim, max_size=dim)), dtype="<f4")
        out.append(RAW_ITEM_MAGIC + len(ident).to_bytes(2, "little") + ident + dim.to_bytes(4, "little") + vec.tobytes())
    defect = draw(st.sampled_from([None, None, None, "nan", "inf", "count", "magic", "id-len", "utf8"]))
    if defect is not None:
        at = draw(st.integers(0, n - 1))
        p = bytearray(out[at])
        id_end = 6 + int.from_bytes(p[4:6], "little")
        if defect in ("nan", "inf"):
            p[id_end + 4 : id_end + 8] = np.array([np.nan if defect == "nan" else -np.inf], dtype="<f4").tobytes()
        elif defect == "count":  # the same size, but the header claims another length
            p[id_end : id_end + 4] = (dim + 1).to_bytes(4, "little")
        elif defect == "magic":
            p[3] = 2
        elif defect == "id-len":  # the same size, the id length field off by one
            p[4:6] = (id_end - 7).to_bytes(2, "little")
        else:
            p[6] = 0xFF
        out[at] = bytes(p)
    return out


@settings(max_examples=300, deadline=None)
@given(uniform_raw_batches(), st.sampled_from([None, 1, 2]))
def test_uniform_raw_batches_decode_as_one_by_one(batch: list[bytes], n_features: int | None) -> None:
    got = decode_items(batch, n_features=n_features, keys=[f"k{i}" for i in range(len(batch))])
    ok, bad = _expected(batch, n_features)
    assert [(i, x, f.tolist(), m) for i, x, f, m in zip(got.index, got.ids, got.features, got.metadata, strict=True)] == ok
    assert [(i, e.item_id, e.field, e.reason) for i, e in got.errors] == bad
    assert got.features.dtype == np.float32 and got.features.flags.c_contiguous


def test_a_batch_of_one_size_takes_the_one_matrix_path() -> None:
    from activestream.schemas import batch as batch_decoder  # (records.py was split; the batch decoder is schemas.batch)

    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    batch = [Item(f"id-{i}", x).encode(raw=True) for i, x in enumerate(X)]
    uniform = batch_decoder._decode_uniform_raw(batch, 3)
    assert uniform is not None and uniform.ids == ["id-0", "id-1", "id-2", "id-3"] and uniform.features.tolist() == X.tolist()
    assert batch_decoder._decode_uniform_raw(batch, 4) is None  # wrong length: the general path words the error
    assert batch_decoder._decode_uniform_raw(batch[:2] + [Item("id-10", X[2]).encode(raw=True)], 3) is None  # sizes differ
