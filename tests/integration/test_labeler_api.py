"""The labeler HTTP API over a real Redis (in-process bus)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from activestream.labeling.api import serve
from activestream.labeling.auth import LabelerTokens, parse_tokens
from activestream.labeling.service import InvalidLabel, LabelService
from activestream.rankedqueue import QueueKeys, RankedQueue
from activestream.schemas import Label, decode_label, decode_queue_entry
from activestream.streams.memory import InMemoryBus
from activestream.streams.topics import Topics

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def serving(service: LabelService, tokens: LabelerTokens | None = None) -> Iterator[str]:
    """The API on a free port for the ``with`` block: its base URL."""
    server = serve(service, 0, tokens=tokens)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api(redis_client: redis.Redis, namespace: str) -> Iterator[tuple[str, InMemoryBus, Topics, RankedQueue]]:
    bus, topics = InMemoryBus(), Topics("api")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c"], np.array([0.9, 0.5, 0.1]), np.eye(3, dtype=np.float32), [{"url": "x"}, {}, {}])
    with serving(LabelService(queue, bus, topics)) as base:
        yield base, bus, topics, queue


def call(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    """GET ``url`` (POST with a JSON ``body``), as the holder of ``token`` if given: ``(status, JSON reply)``."""
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method="POST" if body is not None else "GET",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        assert e.code != 401 or e.headers["WWW-Authenticate"].startswith("Bearer")
        return e.code, json.loads(e.read())


PAGE_RUNNER = Path(__file__).with_name("labeling_page_runner.mjs")


def run_script(*cmd: str, timeout: float = 60) -> dict:
    """Run a page driver (Node) and return the JSON it printed of what it saw."""
    out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_lease_submit_skip_status(api) -> None:
    base, bus, topics, queue = api
    code, body = call(f"{base}/lease?k=2&labeler=ann")
    assert code == 200 and [i["id"] for i in body["items"]] == ["a", "b"]
    assert body["items"][0]["metadata"] == {"url": "x"} and body["items"][0]["features"] == [1.0, 0.0, 0.0]
    assert call(f"{base}/labels", {"item_id": "a", "label": "cat", "labeler_id": "ann", "label_id": "L1", "seconds": 3})[1] == {"accepted": True}
    assert call(f"{base}/labels", {"item_id": "a", "label": "cat", "labeler_id": "ann", "label_id": "L1"})[1] == {"accepted": False}
    (msg,) = bus.messages(topics.labels)
    lab = decode_label(msg.value)
    assert (lab.item_id, lab.label, lab.seconds) == ("a", "cat", 3.0)
    # The first label fixes what this campaign takes: one class per item.
    code, reply = call(f"{base}/labels", {"item_id": "b", "labels": ["cat"], "labeler_id": "ann"})
    assert code == 400 and "field 'labels': this campaign's answers come as 'label'" in reply["error"]
    assert len(bus.messages(topics.labels)) == 1 and queue.n_leased() == 1  # b is still ann's to label
    assert call(f"{base}/skip", {"item_id": "b", "labeler_id": "ann"})[1] == {"skips": 1}
    assert call(f"{base}/status")[1] == {"pending": 2, "leased": 0, "labeled": 1, "dropped": 0, "model_version": 0, "classes": [], "task": "multiclass", "feature_names": [], "stop": None}


def test_items_skipped_too_often_are_counted_as_dropped_where_people_look(redis_client: redis.Redis, namespace: str) -> None:
    # (a concurrency audit: items max_skips labelers passed on left the queue, and /status, /campaign, queue info and
    # /metrics said nothing of them: pending + leased + labeled fell short of what was streamed)
    from activestream.commands.queue import queue_info
    from activestream.labeling.metrics import LabelingMetrics

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
    service = LabelService(queue, InMemoryBus(), Topics("api"), max_skips=2)
    with serving(service) as base:
        for labeler in ("ann", "bob"):
            assert [i["id"] for i in call(f"{base}/lease?k=1&labeler={labeler}")[1]["items"]] == ["a"]
            call(f"{base}/skip", {"item_id": "a", "labeler_id": labeler})
        status, campaign = call(f"{base}/status")[1], call(f"{base}/campaign")[1]
    assert (status["pending"], status["dropped"]) == (1, 1)
    assert campaign["queue"]["dropped"] == 1 and queue_info(queue)["dropped"] == 1
    registry = CollectorRegistry()
    LabelingMetrics.create(registry, queue, namespace)
    assert registry.get_sample_value("activestream_labeler_api_dropped_items", {"namespace": namespace}) == 1.0


def test_only_the_lease_holder_labels_or_skips_a_leased_item(api) -> None:
    base, bus, topics, queue = api
    assert [i["id"] for i in call(f"{base}/lease?k=1&labeler=ann")[1]["items"]] == ["a"]
    code, reply = call(f"{base}/labels", {"item_id": "a", "label": "dog", "labeler_id": "bob"})
    assert code == 409 and reply["error"].startswith("item 'a': field 'labeler_id': 'bob' does not hold its lease")
    code, reply = call(f"{base}/skip", {"item_id": "a", "labeler_id": "bob"})
    assert code == 409 and "'bob' does not hold its lease" in reply["error"]
    assert not bus.messages(topics.labels) and queue.lease_holder("a") == "ann"  # ann's work still counts
    assert call(f"{base}/labels", {"item_id": "a", "label": "cat", "labeler_id": "ann"}) == (200, {"accepted": True})
    # A pending item takes anyone's label (e.g. a UI labeling by id), and a lease that ran out is no one's.
    assert call(f"{base}/labels", {"item_id": "b", "label": "cat", "labeler_id": "bob"}) == (200, {"accepted": True})
    queue.claim(["c"], "ann", ttl=0.05)
    time.sleep(0.1)
    assert queue.lease_holder("c") is None
    assert call(f"{base}/labels", {"item_id": "c", "label": "dog", "labeler_id": "bob"}) == (200, {"accepted": True})
    assert [decode_label(m.value).labeler_id for m in bus.messages(topics.labels)] == ["ann", "bob", "bob"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"label": 1, "labeler_id": "x"}, "field 'item_id': missing"),
        ({"item_id": "c", "labeler_id": "x"}, "item 'c': field 'label'"),
        ({"item_id": "c", "label": 1, "labeler_id": "x", "seconds": "slow"}, "item 'c': field 'seconds'"),
        ({"item_id": "zz", "label": 1, "labeler_id": "x"}, "item 'zz': field 'item_id': not in the queue (already labeled, dropped or never scored)"),
        # Labels the retrainer would dead-letter are refused while the item is still queued.
        ({"item_id": "c", "label": 1, "labeler_id": "x", "seconds": -1}, "item 'c': field 'seconds'"),
        ({"item_id": "c", "label": 1, "labeler_id": "x", "seconds": float("nan")}, "item 'c': field 'seconds'"),
        ({"item_id": "c", "label": 1, "labeler_id": ""}, "item 'c': field 'labeler_id'"),
        ({"item_id": "c", "labels": [1.5], "labeler_id": "x"}, "item 'c': field 'labels[0]'"),
        ({"item_id": "c", "label": 1, "labeler_id": "x", "seconds": 10**400}, "item 'c': field 'seconds': too large"),
    ],
)
def test_bad_requests_name_item_and_field(api, body: dict, message: str) -> None:
    base, bus, topics, queue = api
    code, reply = call(f"{base}/labels", body)
    assert code == 400 and message in reply["error"]
    assert queue.depth() == 3 and not bus.messages(topics.labels)  # nothing published, nothing left the queue
    assert call(f"{base}/lease?k=many&labeler=a")[0] == 400


def raw_request(base: str, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send ``head`` (request line and headers, CRLF-joined) and ``body`` as they are; read the JSON reply."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode() + b"\r\n\r\n" + body)
        s.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    status, _, rest = reply.partition(b"\r\n")
    return int(status.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize(
    ("head", "body", "code", "message"),
    [
        ("POST /labels HTTP/1.1\r\nContent-Length: 14", b'{"item_id":"\xff"}'[:14], 400, "not UTF-8"),
        ("POST /labels HTTP/1.1\r\nContent-Length: 200000", b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),
        ("POST /labels HTTP/1.1\r\nContent-Length: 5020", b'{"label": ' + b"9" * 5000 + b"}" + b" " * 9, 400, "not valid JSON"),
        ("POST /labels HTTP/1.1\r\nContent-Length: abc", b"", 400, "'Content-Length': not an integer"),
        ("POST /labels HTTP/1.1\r\nContent-Length: -1", b"{}", 400, "'Content-Length': negative"),
        ("POST /labels HTTP/1.1\r\nContent-Length: 1000000000000000", b"{}", 413, "the limit is"),
        ("GET /nope HTTP/1.1", b"", 404, "no route GET /nope"),
        ("PUT /labels HTTP/1.1\r\nContent-Length: 0", b"", 405, "PUT"),
    ],
)
def test_malformed_requests_get_a_json_error_and_the_server_serves_on(api, head: str, body: bytes, code: int, message: str) -> None:
    base, bus, topics, queue = api
    got, reply = raw_request(base, head, body)
    assert (got, message in reply["error"]) == (code, True), reply
    assert call(f"{base}/status")[1]["pending"] == 3


def test_a_digit_that_is_no_integer_is_refused_not_a_500(api) -> None:
    base, bus, topics, queue = api
    assert call(f"{base}/labels", {"item_id": "a", "label": 1, "labeler_id": "ann"})[1] == {"accepted": True}  # an integer campaign
    code, reply = call(f"{base}/labels", {"item_id": "b", "label": "\u00b2", "labeler_id": "ann"})  # "²".isdigit() is true
    assert code == 400 and "item 'b': field 'label'" in reply["error"]
    assert call(f"{base}/labels", {"item_id": "b", "label": " 7 ", "labeler_id": "ann"})[1] == {"accepted": True}
    assert call(f"{base}/labels", {"item_id": "c", "label": "\uff13", "labeler_id": "ann"})[1] == {"accepted": True}  # a fullwidth 3 is 3


def test_a_client_that_does_not_read_its_reply_holds_no_one_up(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    n = 1000
    X = np.random.default_rng(0).random((n, 512)).astype(np.float32)  # ~20 characters a value: a lease of all is ~10 MB of JSON,
    queue.add([f"i{k}" for k in range(n)], np.linspace(0, 1, n), X)   # more than the socket buffers hold
    with serving(LabelService(queue, InMemoryBus(), Topics("slow"))) as base:
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10) as stuck:
            stuck.sendall(b"GET /lease?k=1000&labeler=slow HTTP/1.1\r\n\r\n")  # and never reads the reply
            time.sleep(1.0)
            # A server held up by the stuck reply never answers: call's 10 s timeout fails the test (no
            # tighter wall-clock bound: under CI load a free server has taken 5.9 s).
            code, status = call(f"{base}/status")
            assert code == 200 and status["leased"] == n


def test_a_label_is_accepted_even_when_a_dispatcher_acknowledges_it_first(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.labeling.dispatcher import Dispatcher

    class RacingBus(InMemoryBus):
        """A dispatcher consuming the labels topic gets each label in before the submit marks it."""

        dispatcher: Dispatcher | None = None

        def flush(self, timeout: float = 30.0) -> None:
            if self.dispatcher is not None:
                self.dispatcher.acknowledge(0.0)

    bus, topics = RacingBus(), Topics("race")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
    bus.dispatcher = Dispatcher(queue, bus, topics)
    service = LabelService(queue, bus, topics)
    assert service.submit("a", labeler_id="ann", label=1, label_id="L1") is True
    assert queue.is_labeled("a") and service.submit("a", labeler_id="ann", label=1, label_id="L1") is False  # a true repeat
    assert len(bus.messages(topics.labels)) == 1


def test_the_dispatcher_leaves_queued_an_item_whose_label_the_retrainer_will_refuse(redis_client: redis.Redis, namespace: str) -> None:
    # A tool writing to the labels topic directly: a label the retrainer dead-letters (an undeclared class, no features,
    # another width) took its item out of the queue all the same, so it could never be labeled again (a fault-day audit).
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.schemas import Label

    bus, topics = InMemoryBus(), Topics("ext")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c", "d", "e"], np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.eye(5, 4, dtype=np.float32))
    queue.ensure_n_features(4)
    queue.record_declared_classes((0, 1))
    x = np.ones(4, dtype=np.float32)
    for label in (Label("a", "La", "tool", label=12, features=x), Label("b", "Lb", "tool", label=1),
                  Label("c", "Lc", "tool", label=1, features=np.ones(3, dtype=np.float32)), Label("d", "Ld", "tool", label=1, features=x),
                  Label("e", "Le", "tool", labels=(1,), features=x)):  # (d fixed the campaign's answers as one class each)
        bus.publish(topics.labels, label.encode(), key=label.item_id.encode())
    Dispatcher(queue, bus, topics).acknowledge(0.0)
    assert [queue.is_labeled(i) for i in "abcde"] == [False, False, False, True, False]
    assert queue.depth() == 4 and queue.get_meta_fields("label_field", "label_kind") == {"label_field": "label", "label_kind": "integers"}


def test_a_label_the_broker_does_not_take_in_time_is_a_503_to_retry_not_an_internal_error(redis_client: redis.Redis, namespace: str,
                                                                                         caplog: pytest.LogCaptureFixture) -> None:
    from activestream.labeling.api import OUTAGE_HOLD_SECONDS
    from activestream.streams.bus import BrokerUnavailable

    class AwayBroker(InMemoryBus):
        def flush(self, timeout: float = 30.0) -> None:
            raise BrokerUnavailable("1 Kafka records still undelivered after 30.0s (is the broker reachable?)")

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.9]), np.eye(1, dtype=np.float32))
    for f in logging.getLogger("activestream.labeling.api.outage").filters:  # (a line of the same kind earlier in the run)
        f.forget()  # type: ignore[attr-defined]
    with serving(LabelService(queue, AwayBroker(), Topics("away"))) as base:
        req = urllib.request.Request(f"{base}/labels", json.dumps({"item_id": "a", "labeler_id": "ann", "label": 1, "label_id": "L1"}).encode(),
                                     {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 503 and err.value.headers["Retry-After"] == "1"
        assert json.loads(err.value.read())["error"].startswith("backend: Kafka unavailable (BrokerUnavailable); retry later")
        for _ in range(3):  # (a labeler retrying, past the API's 1 s hold: one log line, not one per retry; an ops audit counted 57 in 75 s)
            time.sleep(OUTAGE_HOLD_SECONDS + 0.1)
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(req, timeout=30)
    assert not queue.is_labeled("a")
    assert len([r for r in caplog.records if "Kafka unavailable" in r.getMessage()]) == 1, caplog.text


def test_a_labeler_hands_a_leased_item_back_untouched(api) -> None:  # type: ignore[no-untyped-def]
    # (a fault-day audit: the only way to give back a lease was /skip, which counts towards ACTIVESTREAM_MAX_SKIPS and
    # keeps the item from that labeler; a labeler stopping for the day kept their items out until their leases ran out)
    base, bus, topics, queue = api
    (a,) = call(f"{base}/lease?k=1&labeler=ann")[1]["items"]
    code, reply = call(f"{base}/return", {"item_id": a["id"], "labeler_id": "bob"})
    assert code == 409 and "another labeler does" in reply["error"]
    assert call(f"{base}/return", {"item_id": a["id"], "labeler_id": "ann"}) == (200, {"returned": True})
    assert queue.n_leased() == 0 and not queue.r.hlen(queue.k.skips)  # pending again, no skip counted
    assert call(f"{base}/lease?k=1&labeler=ann")[1]["items"][0]["id"] == a["id"]  # (offered to ann again: the top)
    assert call(f"{base}/return", {"item_id": "nope", "labeler_id": "ann"}) == (200, {"returned": False})
    code, reply = call(f"{base}/return", {"labeler_id": "ann"})
    assert code == 400 and "item_id" in reply["error"]


def test_status_counts_an_expired_lease_as_pending(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
    service = LabelService(queue, InMemoryBus(), Topics("ttl"))
    service.lease_ttl = 0.3
    with serving(service) as base:
        assert len(call(f"{base}/lease?k=1&labeler=ann")[1]["items"]) == 1
        assert call(f"{base}/status")[1]["leased"] == 1
        time.sleep(0.5)
        assert call(f"{base}/status")[1] == {"pending": 2, "leased": 0, "labeled": 0, "dropped": 0, "model_version": 0, "classes": [], "task": "multiclass", "feature_names": [], "stop": None}


def test_a_terminal_labelers_skip_hands_the_item_back_and_the_group_gets_the_next(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.terminal import label_from_topic

    bus, topics = InMemoryBus(), Topics("skip")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["hard", "easy", "next"], np.array([0.9, 0.5, 0.1]), np.eye(3, dtype=np.float32))
    dispatcher = Dispatcher(queue, bus, topics, max_outstanding=1, max_skips=2, ack_timeout=60.0)
    shown: list[tuple[str, str]] = []

    def labeler(name: str) -> Callable[..., int | None]:
        def answer(item_id: str, features: object, metadata: object) -> int | None:
            shown.append((name, item_id))
            return None if item_id == "hard" else 1  # everyone passes on "hard" and labels the rest
        return answer

    def turn(name: str, now: float) -> None:
        dispatcher.dispatch(now)
        label_from_topic(bus, topics, labeler(name), labeler_id=name, max_items=1, idle_timeout=0.5)
        dispatcher.acknowledge(0.0)

    t0 = time.time()
    turn("ann", t0)
    turn("ann", t0 + 1)  # "hard" came back at once, but the group gets other work first
    assert shown == [("ann", "hard"), ("ann", "easy")] and queue.score_of("hard") == 0.9 and queue.n_leased() == 0
    turn("bob", t0 + 61)  # after ack_timeout the group gets it again: a second labeler passes on it too
    assert shown[-1] == ("bob", "hard") and queue.score_of("hard") is None and queue.depth() == 1  # dropped (max_skips 2)
    turn("bob", t0 + 62)
    assert shown[-1] == ("bob", "next") and queue.depth() == 0 and dispatcher.metrics.skipped._value.get() == 2  # type: ignore[attr-defined]


def test_a_skip_read_again_after_the_group_leased_the_item_anew_changes_nothing(redis_client: redis.Redis, namespace: str) -> None:
    # (a review: a skip record the dispatcher read again after an outage or a rebalance, once the group had leased the
    # item anew (more than --ack-timeout later), handed the new lease back and counted a second pass on the metric)
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.schemas import Skip

    bus, topics = InMemoryBus(), Topics("skip-again")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.9]), np.eye(1, 3, dtype=np.float32))
    dispatcher = Dispatcher(queue, bus, topics, max_outstanding=1, max_skips=3, ack_timeout=60.0)
    t0 = queue.now()
    assert dispatcher.dispatch(t0) == 1
    (first,) = [decode_queue_entry(m.value) for m in bus.messages(topics.queue)]
    skip = Skip("a", "ann", lease_expires_at=first.lease_expires_at).encode()
    bus.publish(topics.skips, skip, key=b"a")
    dispatcher.acknowledge(0.0)
    assert queue.n_leased() == 0 and dispatcher.metrics.skipped._value.get() == 1  # noqa: SLF001
    assert dispatcher.dispatch(t0 + 61) == 1  # (after ack_timeout the group gets it again)
    bus.publish(topics.skips, skip, key=b"a")  # the same record, read again
    dispatcher.acknowledge(0.0)
    assert queue.lease_holder("a", t0 + 62) == dispatcher.owner and dispatcher.metrics.skipped._value.get() == 1  # noqa: SLF001
    assert int(queue.r.hget(queue.k.skips, "a") or 0) == 1
    # A skip of the new lease is taken; one naming no lease (another labeler tool's) is taken as before.
    (_, again) = [decode_queue_entry(m.value) for m in bus.messages(topics.queue)]
    bus.publish(topics.skips, Skip("a", "bob", lease_expires_at=again.lease_expires_at).encode(), key=b"a")
    dispatcher.acknowledge(0.0)
    assert queue.n_leased() == 0 and dispatcher.metrics.skipped._value.get() == 2  # noqa: SLF001
    assert dispatcher.dispatch(t0 + 130) == 1
    bus.publish(topics.skips, Skip("a", "cy").encode(), key=b"a")
    dispatcher.acknowledge(0.0)
    assert queue.score_of("a") is None and dispatcher.metrics.skipped._value.get() == 3  # noqa: SLF001 - dropped at max_skips 3


def test_random_control_and_representative_picks_skip_what_the_labeler_passed_on(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    ids = [f"i{j}" for j in range(6)]
    queue.add(ids, np.linspace(0.1, 0.6, 6), np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32))
    for i in ids[:5]:  # ann passed on all but one
        assert queue.skip(i, "ann", max_skips=3) == 1
    cold = LabelService(queue, InMemoryBus(), Topics("c"), cold_start="representative", seed=0)
    assert [e.id for e in cold.lease(3, "ann")] == ["i5"]
    queue.expire_leases(now=time.time() + 10_000)
    queue.set_meta(ranked_version=1)
    control = LabelService(queue, InMemoryBus(), Topics("c"), explore=1.0, seed=0)
    assert [(e.id, e.control) for e in control.lease(3, "ann")] == [("i5", True)]
    assert len(control.lease(3, "bob")) == 3  # bob passed on nothing


def test_a_lease_that_ran_out_is_no_ones_to_skip(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.5]), np.ones((1, 3), dtype=np.float32))
    queue.claim(["a"], "ann", ttl=0.05)
    time.sleep(0.1)
    assert LabelService(queue, InMemoryBus(), Topics("s"), max_skips=3).skip("a", "bob") == 1


def test_a_label_holds_its_item_while_it_goes_out(redis_client: redis.Redis, namespace: str) -> None:
    # A dispatcher (or another labeler-api) leasing the item while ann's label is being published
    # would lose its lease to mark_labeled, and the item would be labeled twice.
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.5]), np.ones((1, 3), dtype=np.float32))
    raced: list[list[tuple[str, float]]] = []

    class RacingBus(InMemoryBus):
        def publish(self, topic: str, value: bytes, key: bytes | None = None) -> None:
            raced.append(queue.claim(["a"], "dispatch:labelers", 60))
            super().publish(topic, value, key)

    assert LabelService(queue, RacingBus(), Topics("r")).submit("a", labeler_id="ann", label=1)
    assert raced == [[]] and queue.n_leased_by("dispatch:labelers") == 0 and queue.is_labeled("a")


def ten_ranked_items(redis_client: redis.Redis, namespace: str, prefix: str) -> tuple[RankedQueue, InMemoryBus, Topics]:
    """A queue of ten items i0..i9 (i9 on top) and an in-memory bus, for the dispatcher's tests."""
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add([f"i{j}" for j in range(10)], np.linspace(0.1, 1.0, 10), np.ones((10, 3), dtype=np.float32))
    return queue, InMemoryBus(), Topics(prefix)


def test_two_dispatchers_of_one_group_keep_to_max_outstanding_together(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activestream.labeling.dispatcher import Dispatcher

    queue, bus, topics = ten_ranked_items(redis_client, namespace, "d")
    first, second = (Dispatcher(queue, bus, topics, max_outstanding=3) for _ in range(2))
    monkeypatch.setattr(queue, "n_leased_by", lambda owner: 0)  # both read the room before either claims
    assert first.dispatch() + second.dispatch() == 3
    assert len(bus.messages(topics.queue)) == 3 and queue.r.scard(queue.k.owned("dispatch:labelers")) == 3


def test_the_dispatcher_counts_as_acknowledged_only_the_labels_of_items_it_sent(redis_client: redis.Redis, namespace: str) -> None:
    # (an ops audit: activestream_dispatch_acked_total grew with labels given through the API, nothing dispatched: the
    # dispatcher's mark_labeled had beaten the API's own to an item the API had leased)
    from activestream.labeling.dispatcher import Dispatcher

    queue, bus, topics = ten_ranked_items(redis_client, namespace, "ack")
    d = Dispatcher(queue, bus, topics, max_outstanding=2)
    assert d.dispatch() == 2
    sent = [m.key.decode() for m in bus.messages(topics.queue)]  # type: ignore[union-attr]
    api = [e.id for e in LabelService(queue, bus, topics).lease(3, "ann")]
    for item in sent + api:  # (labels on the topic, as a queue-topic labeler and the API write them; none marked yet)
        lab = Label(item, f"L-{item}", "someone", label=1, features=np.ones(3, dtype=np.float32))
        bus.publish(topics.labels, lab.encode(), key=item.encode())
    d.acknowledge(0.0)
    assert d.metrics.acked._value.get() == 2 and queue.n_labeled() == 5  # noqa: SLF001 - the two it sent, of five marked


def test_the_dispatcher_sends_work_only_while_labelers_read_the_queue_topic(redis_client: redis.Redis, namespace: str) -> None:
    # A stack whose labelers all use the page (or Label Studio) must not have its queue's top
    # held for a topic nobody reads: the dispatcher waits for a member of the readers' group.
    from activestream.labeling.dispatcher import Dispatcher

    queue, bus, topics = ten_ranked_items(redis_client, namespace, "rd")
    d = Dispatcher(queue, bus, topics, max_outstanding=3, readers="labelers", readers_every=0.0)
    assert d.dispatch() == 0 and queue.n_leased_by(d.owner) == 0 and d.metrics.readers._value.get() == 0  # noqa: SLF001
    assert d.metrics.outstanding._value.get() == 0  # noqa: SLF001 - (nothing is out: it said 3, its maximum)
    assert LabelService(queue, bus, topics).lease(1, "ann")[0].id == "i9"  # the page gets the top
    reader = bus.consumer([topics.queue], "labelers")
    assert d.dispatch() == 3 and d.metrics.readers._value.get() == 1  # noqa: SLF001
    reader.close()
    # (a concurrency audit: while the leases held were at their most the group was not asked again: the gauge said 1 for minutes)
    assert d.dispatch() == 0 and d.metrics.readers._value.get() == 0  # noqa: SLF001
    queue.expire_leases(now=time.time() + 10_000)
    assert d.dispatch(time.time() + 10_000) == 0  # it left: nothing more is sent
    assert Dispatcher(queue, bus, topics, max_outstanding=3).dispatch() == 3  # (readers=None: always)


def test_a_broker_that_cannot_say_who_reads_the_queue_topic_gets_nothing_sent_but_one_that_may_not_say_does(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (a fault-day audit: after a broker blip the describe call timed out and the dispatcher sent the queue's top 100 to
    # a topic nobody read, "dispatching regardless", held from the page for the ack timeout)
    from activestream.labeling.dispatcher import Dispatcher

    queue, bus, topics = ten_ranked_items(redis_client, namespace, "blip")
    d = Dispatcher(queue, bus, topics, max_outstanding=3, readers="labelers", readers_every=0.0)
    errors = iter([RuntimeError("KafkaError{code=_TIMED_OUT}"), RuntimeError("KafkaError{code=GROUP_AUTHORIZATION_FAILED}")])

    def describe(group: str) -> int:
        raise next(errors)

    monkeypatch.setattr(bus, "group_members", describe, raising=False)
    assert d.dispatch() == 0 and d.metrics.readers._value.get() == 0  # noqa: SLF001 - (a timeout: nobody known to read)
    assert d.dispatch() == 3 and d.metrics.readers._value.get() == -1  # noqa: SLF001 - (not allowed to ask: as if watched)


def test_the_curriculum_starts_after_the_cold_start(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    ids = [f"i{j}" for j in range(30)]
    queue.add(ids, np.zeros(30), np.arange(30, dtype=np.float32).reshape(30, 1) * np.ones((1, 3), dtype=np.float32))
    svc = LabelService(queue, InMemoryBus(), Topics("cur"), curriculum_labels=10)
    for e in svc.lease(10, "ann"):  # the cold start: 10 labels before any model
        svc.submit(e.id, labeler_id="ann", label=0)
    queue.rerank(lambda ids, X: np.asarray(X[:, 0], dtype=np.float64), version=1)  # uncertainty = the first feature
    (first,) = svc.lease(1, "ann")
    assert first.score == min(s for _, s in queue.ranking() + [(first.id, first.score)])  # the easy end, not the head


def test_topic_labelers_get_the_random_control_slice_and_their_labels_say_so(redis_client: redis.Redis, namespace: str) -> None:
    # Without it, a deployment whose labelers all read the queue topic never has control
    # labels: no live accuracy estimate and no auto-accept calibration.
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.terminal import label_from_topic

    bus, topics = InMemoryBus(), Topics("ctl")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add([f"i{j}" for j in range(40)], np.linspace(0.0, 1.0, 40), np.ones((40, 3), dtype=np.float32))
    dispatcher = Dispatcher(queue, bus, topics, max_outstanding=10, explore=0.3, seed=0)
    assert dispatcher.dispatch() == 10  # cold (nothing ranked yet): no control slice
    queue.expire_leases(now=time.time() + 10_000)
    queue.set_meta(ranked_version=1, model_version=1)
    assert dispatcher.dispatch(time.time() + 10_000) == 10
    entries = [decode_queue_entry(m.value) for m in bus.messages(topics.queue)]
    assert [e.metadata.get("control", False) for e in entries].count(True) == 3 and not any(e.metadata for e in entries[:10])
    ranked = {e.id for e in entries[10:] if not e.metadata}
    assert ranked == {f"i{j}" for j in range(33, 40)}  # the rest is the head of the ranking
    assert label_from_topic(bus, topics, lambda *a: 1, labeler_id="ann", max_items=20, idle_timeout=0.5) == 20
    labels = [decode_label(m.value) for m in bus.messages(topics.labels)]
    controls = {e.id for e in entries[10:] if e.metadata.get("control")}
    assert {lab.item_id for lab in labels if lab.control} == controls
    # the version that ranked each item goes with its label (the export's model_version; it was empty for the terminal's)
    assert {lab.model_version for lab in labels[:10]} == {None} and {lab.model_version for lab in labels[10:]} == {1}


def test_a_producers_control_key_does_not_make_a_control_label(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.terminal import label_from_topic

    bus, topics = InMemoryBus(), Topics("md")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.5]), np.ones((1, 3), dtype=np.float32), [{"control": True, "src": "cam"}])
    assert Dispatcher(queue, bus, topics, max_outstanding=5).dispatch() == 1
    (m,) = bus.messages(topics.queue)
    assert decode_queue_entry(m.value).metadata == {"src": "cam"}
    label_from_topic(bus, topics, lambda *a: 1, labeler_id="ann", max_items=1, idle_timeout=0.5)
    assert [decode_label(x.value).control for x in bus.messages(topics.labels)] == [False]


def test_the_dispatchers_control_picks_leave_out_what_the_group_just_passed_on(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.labeling.dispatcher import Dispatcher

    bus, topics = InMemoryBus(), Topics("pass")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c"], np.array([0.1, 0.2, 0.3]), np.ones((3, 3), dtype=np.float32))
    queue.set_meta(ranked_version=1)
    dispatcher = Dispatcher(queue, bus, topics, max_outstanding=1, max_skips=10, ack_timeout=60.0, explore=1.0, seed=0)
    t0 = time.time()
    sent: list[str] = []
    for step in range(3):  # each item sent is passed on at once
        dispatcher.dispatch(t0 + step)
        item = decode_queue_entry(bus.messages(topics.queue)[-1].value).id
        sent.append(item)
        assert queue.skip(item, f"l{step}", 10, holder=dispatcher.owner, now=t0 + step) >= 1
    assert sorted(sent) == ["a", "b", "c"]  # within ack_timeout, never the same one again


def test_a_refused_label_leaves_its_item_queued(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.5, 0.4]), np.ones((2, 3), dtype=np.float32))
    svc = LabelService(queue, InMemoryBus(), Topics("ref"))
    assert svc.submit("a", labeler_id="ann", label=1)  # the campaign takes one class per item
    with pytest.raises(InvalidLabel, match="answers come as 'label'"):
        svc.submit("b", labeler_id="ann", labels=[1])
    assert queue.score_of("b") == 0.4 and queue.n_leased() == 0 and queue.lease_holder("b") is None


def test_a_host_whose_clock_runs_ahead_neither_takes_nor_extends_others_leases(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Leases are timed by the queue's clock (Redis's), not each host's: a labeling API or a
    # dispatcher on a host an hour ahead must not expire ann's 60 s lease as if it had run out.
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.service import LeasedToAnother

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c"], np.array([0.9, 0.5, 0.1]), np.eye(3, dtype=np.float32))
    (a,) = LabelService(queue, InMemoryBus(), Topics("clock"), lease_ttl=60).lease(1, "ann")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    ahead = LabelService(RankedQueue(redis_client, QueueKeys(namespace)), InMemoryBus(), Topics("clock"), lease_ttl=60)
    (b,) = ahead.lease(1, "bob")
    assert (a.id, b.id) == ("a", "b") and queue.lease_holder("a") == "ann"
    with pytest.raises(LeasedToAnother):
        ahead.submit("a", labeler_id="bob", label=1)
    bus, topics = InMemoryBus(), Topics("clock")
    assert Dispatcher(RankedQueue(redis_client, QueueKeys(namespace)), bus, topics, ack_timeout=60).dispatch() == 1
    assert [decode_queue_entry(m.value).id for m in bus.messages(topics.queue)] == ["c"]
    # Every lease ends 60 s after the shared clock's now, whichever host granted it.
    server_now = queue.now()
    assert abs(server_now - real_time()) < 5
    for item_id in "abc":
        expiry = queue.lease_expiry(item_id)
        assert expiry is not None and 50 < expiry - server_now <= 60


def test_with_tokens_the_labeler_is_the_tokens_and_strangers_get_401(redis_client: redis.Redis, namespace: str) -> None:
    bus, topics = InMemoryBus(), Topics("auth")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b", "c", "d"], np.array([0.9, 0.7, 0.5, 0.1]), np.eye(4, dtype=np.float32))
    tokens = parse_tokens("# labelers\nann-0123456789abcdef ann\nbob-0123456789abcdef bob\n")
    with serving(LabelService(queue, bus, topics, max_skips=2), tokens) as base:

        def as_(token: str | None, path: str, body: dict | None = None) -> tuple[int, dict]:
            return call(base + path, body, token)

        for token in (None, "ann-0123456789abcdeX"):
            code, reply = as_(token, "/lease?k=1&labeler=ann")
            assert code == 401 and reply["error"].startswith("header 'Authorization'")
        # Made-up labeler ids cannot drop a pending item: each skip needs a token, and counts as its labeler.
        assert as_(None, "/skip", {"item_id": "d", "labeler_id": "x1"})[0] == 401
        assert as_("bob-0123456789abcdef", "/skip", {"item_id": "d", "labeler_id": "x1"})[0] == 403
        assert as_("bob-0123456789abcdef", "/skip", {"item_id": "d"}) == (200, {"skips": 1})
        assert as_("bob-0123456789abcdef", "/skip", {"item_id": "d", "labeler_id": "bob"}) == (200, {"skips": 1})
        code, reply = as_("ann-0123456789abcdef", "/lease?k=1")
        assert code == 200 and [i["id"] for i in reply["items"]] == ["a"] and queue.lease_holder("a") == "ann"
        code, reply = as_("ann-0123456789abcdef", "/lease?k=1&labeler=bob")
        assert code == 403 and reply["error"] == "query 'labeler': 'bob' is not the labeler of this request's token"
        assert as_("bob-0123456789abcdef", "/labels", {"item_id": "a", "label": 1})[0] == 409  # ann's lease
        assert as_("ann-0123456789abcdef", "/labels", {"item_id": "a", "label": 1, "labeler_id": "bob"})[0] == 403
        assert as_("ann-0123456789abcdef", "/labels", {"item_id": "a", "label": 1}) == (200, {"accepted": True})
        assert [decode_label(m.value).labeler_id for m in bus.messages(topics.labels)] == ["ann"]
        assert as_(None, "/status")[0] == 200  # (read-only counts stay open, for dashboards and probes)


def test_the_labeling_page_leases_labels_and_skips_through_the_api(redis_client: redis.Redis, namespace: str, node: str) -> None:
    # The page's own script, run by Node with a small fake DOM against this live API: what a
    # labeler in a browser does, down to the requests it makes.
    bus, topics = InMemoryBus(), Topics("page")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    metadata = [{"image": "https://example.org/cat.png", "note": "<b>not html</b>"}, {}, {}, {}, {}]
    queue.add([f"i{j}" for j in range(5)], np.linspace(0.9, 0.5, 5), np.eye(5, dtype=np.float32), metadata)
    queue.set_meta(model_version=3, ranked_version=3, classes=json.dumps([0, 1, 2]), task="multiclass")
    with serving(LabelService(queue, bus, topics, max_skips=3), parse_tokens("ann-0123456789abcdef ann\n")) as base:
        with urllib.request.urlopen(f"{base}/", timeout=10) as page:  # noqa: S310 - loopback
            assert page.headers["Content-Type"].startswith("text/html")
        seen = run_script(node, str(PAGE_RUNNER), base, "ann-0123456789abcdef")
    assert seen["loginFirst"] and "header 'Authorization'" in seen["messages"][0]
    assert seen["shown"] == ["i0", "i1", "i2", "i3"] and seen["stillShown"] == "i2"
    assert seen["buttons"] == ["[1] 0", "[2] 1", "[3] 2"] and seen["counts"].endswith("model v3")
    assert seen["metadata"] == {"image": {"tag": "IMG", "text": "", "src": "https://example.org/cat.png"},
                                "note": {"tag": "SPAN", "text": "<b>not html</b>", "src": None}}
    assert "field 'label': this campaign's labels are integers" in seen["messages"][1]
    labels = [decode_label(m.value) for m in bus.messages(topics.labels)]
    assert [(lab.item_id, lab.labeler_id, lab.label) for lab in labels] == [("i0", "ann", 1), ("i2", "ann", 2)]
    assert all(0 <= lab.seconds < 30 for lab in labels)
    assert queue.skipped_by("ann", ["i1"]) == [True] and queue.lease_holder("i3") == "ann"
    assert seen["stored"] == {"activestream.labeler": ""} and seen["session"] == {"activestream.token": "ann-0123456789abcdef"}
    assert seen["tokenAfterLogout"] == ""  # (Switch labeler: the next person is not signed in as ann)


def test_the_labeling_page_without_tokens_and_with_a_multilabel_model(redis_client: redis.Redis, namespace: str, node: str) -> None:
    bus, topics = InMemoryBus(), Topics("page-ml")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["x", "y"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
    queue.set_meta(model_version=1, ranked_version=1, classes=json.dumps(["sky", "sea", "sand"]), task="multilabel")
    with serving(LabelService(queue, bus, topics)) as base:
        seen = run_script(node, str(PAGE_RUNNER), base, "--name", "bob")
    # (the first class toggled three times; then the "none of these" button and the keys hint)
    assert seen["shown"] == ["x", "y"] and seen["on"] == ["on", "", "on", "", ""]
    (lab,) = [decode_label(m.value) for m in bus.messages(topics.labels)]
    assert (lab.item_id, lab.labeler_id, lab.label, lab.labels) == ("x", "bob", None, ("sky", "sand"))
    assert queue.lease_holder("y") == "bob" and seen["stored"] == {"activestream.labeler": "bob"} and seen["session"] == {"activestream.token": ""}


def test_a_bad_lease_query_names_its_field_with_or_without_tokens(api) -> None:
    base = api[0]
    assert call(f"{base}/lease?k=5") == (400, {"error": "query 'labeler': missing"})
    assert call(f"{base}/lease?k=0&labeler=ann") == (400, {"error": "query 'k': expected 1 <= k <= 1000, got 0"})
    assert call(f"{base}/lease?k=x&labeler=ann") == (400, {"error": "query 'k': expected an integer"})


def test_with_tokens_only_get_status_is_open(redis_client: redis.Redis, namespace: str) -> None:
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.9]), np.eye(1, dtype=np.float32))
    with serving(LabelService(queue, InMemoryBus(), Topics("auth")), parse_tokens("ann-0123456789abcdef ann\n")) as base:

        def request(path: str, body: dict | None, token: str | None) -> tuple[int, dict]:
            return call(base + path, body, token)

        assert request("/status", None, None)[0] == 200
        # Another method on /status is no read-only count: a stranger's body is not read for it.
        assert request("/status", {"x": 1}, None)[0] == 401
        assert request("/status", {"x": 1}, "ann-0123456789abcdef")[0] == 404
        # With a token the labeler is not needed; a bad k says so, not "give labeler=".
        assert request("/lease?k=0", None, "ann-0123456789abcdef") == (400, {"error": "query 'k': expected 1 <= k <= 1000, got 0"})


def test_the_labeling_page_under_double_presses_failures_and_lost_leases(redis_client: redis.Redis, namespace: str, node: str) -> None:
    # What a hurried labeler and a flaky network do to the page: an empty lease and then a
    # failed one before the items come (the page keeps looking), a class clicked twice and "s"
    # pressed twice (one answer each, and the next item, not the one after: no item is jumped
    # over while still leased), Ctrl+S and held keys (not answers), a class named "02" typed
    # (the class, not the number 2), and after the page's leases ran out and another labeler
    # took its items, "s" and a class (both move on, saying why).
    bus, topics = InMemoryBus(), Topics("page-races")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    ids = [f"x{j}" for j in range(6)]
    queue.add(ids, np.linspace(0.9, 0.4, 6), np.eye(6, dtype=np.float32))
    queue.set_meta(model_version=1, ranked_version=1, classes=json.dumps(["a", "b", "02"]), task="multiclass")
    with serving(LabelService(queue, bus, topics, lease_ttl=4.0)) as base:
        seen = run_script(node, str(PAGE_RUNNER), base, "--races", "cy")
    assert seen["leases"] == 3
    assert seen["shown"] == ["x0", "x1", "x1", "x2", "x3", "x4"]
    assert set(seen["taken"]) >= {"x3", "x4", "x5"}
    assert all("does not hold its lease" in m for m in seen["messages"]), seen["messages"]
    assert "Nothing to label" in seen["messages"][1]
    labels = [decode_label(m.value) for m in bus.messages(topics.labels)]
    assert [(lab.item_id, lab.labeler_id, lab.label) for lab in labels] == [("x0", "cy", "a"), ("x2", "cy", "02")]
    assert queue.skipped_by("cy", ["x1", "x2", "x3", "x4"]) == [True, False, False, False]


def test_the_page_comes_with_a_content_security_policy(api) -> None:
    # Defence in depth for a page that shows producers' metadata: only its own script and
    # style run (by hash), requests go to this API only, no framing (clickjacking a labeler).
    import base64
    import hashlib
    import re

    with urllib.request.urlopen(f"{api[0]}/", timeout=10) as r:  # noqa: S310 - loopback
        html, headers = r.read().decode(), r.headers
    csp = {d.split()[0]: d.split()[1:] for d in headers["Content-Security-Policy"].split(";") if d.strip()}

    def sha(pattern: str) -> str:
        (text,) = re.findall(pattern, html, re.S)
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert csp["default-src"] == ["'none'"] and csp["script-src"] == [sha(r"<script>(.*?)</script>")]
    assert csp["style-src"] == [sha(r"<style>(.*?)</style>")] and csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("classes", ["not json", '{"a": 1}', "3"])
def test_status_survives_meta_that_is_not_a_list(api, classes: str) -> None:
    # (the labeling page reads /status before each item: a 500 there stops every labeler)
    base, _bus, _topics, queue = api
    queue.set_meta(model_version=2, classes=classes, task="multiclass", feature_names=classes, stop=classes)
    assert call(f"{base}/status") == (200, {"pending": 3, "leased": 0, "labeled": 0, "dropped": 0, "model_version": 2, "classes": [], "task": "multiclass", "feature_names": [], "stop": None})


def test_campaign_shows_what_is_missing_before_a_model_and_the_figures_after(api) -> None:
    # GET /campaign (open, like /status): the live version's estimates, stop rules and auto-accept state.
    from activestream.schemas import ModelVersion
    from activestream.scorer.versions import campaign_record

    base, _bus, _topics, queue = api
    code, body = call(f"{base}/campaign")
    assert code == 200 and body["namespace"] == queue.k.namespace and body["model_version"] == 0 and body["record_version"] is None
    assert body["estimates"]["available"] is False and body["estimates"]["note"] == "not enough control labels yet"
    assert body["stop"] == {"fired": False, "first": None, "rules": {}, "score_fell": None, "note": "labeling may go on; it is a signal, not a lock"}
    assert body["auto_accept"]["on"] is False and body["queue"] == {"pending": 3, "leased": 0, "labeled": 0, "dropped": 0, "streamed": None}
    # A version with too few control labels for estimates, no auto-accept yet: what is missing, and how many more.
    early = {"n_control": 40.0, "control_accuracy": 0.8, "est_control_labels_needed": 60.0, "auto_accept_labels_needed": 259.0, "stop": 0.0}
    mv = ModelVersion(version=2, onnx=b"x", sha256=ModelVersion.digest(b"x"), classes=(0, 1), metrics=early, n_labels=120)
    queue.set_meta(model_version=2, campaign=json.dumps(campaign_record(mv)))
    est, aa = call(f"{base}/campaign")[1]["estimates"], call(f"{base}/campaign")[1]["auto_accept"]
    assert est["available"] is False and est["control_labels_needed"] == 60 and est["n_control"] == 40 and est["accuracy"] is None
    assert aa["on"] is False and aa["threshold"] is None and aa["labels_needed"] == 259
    # The est_* figures (CONTRACT20) with their intervals, a fired rule, auto-accept on and audited.
    figures = {"n_control": 300.0, "control_accuracy": 0.93, "stop": 1.0, "stop_stable_predictions_version": 4.0,
               "stop_stable_predictions_n_labels": 505.0, "auto_accept_threshold": 0.97, "auto_accept_precision_lower_bound": 0.991,
               "auto_accept_labels_needed": 0.0, "auto_accept_threshold_class_1": 0.95, "auto_accept_paused": 0.0, "audit_n": 40.0,
               "audit_correct": 40.0, "audit_precision_lower_bound": 0.928, "est_curve_a": 0.95, "est_curve_b": 0.6, "est_curve_c": 0.5,
               "est_hours_spent": 0.42, "est_budget": 1000.0, "auto_accept_target": 0.99}
    for figure, (e, lo, hi) in {"accuracy": (0.93, 0.9, 0.95), "random_labels": (1400, 900, 2100), "labels_saved": (895, 395, 1595),
                                "savings_share": (0.64, 0.44, 0.76), "hours_saved": (0.75, 0.33, 1.33), "accuracy_at_budget": (0.94, 0.92, 0.96)}.items():
        figures |= {f"est_{figure}": e, f"est_{figure}_low": lo, f"est_{figure}_high": hi}
    mv = ModelVersion(version=6, onnx=b"x", sha256=ModelVersion.digest(b"x"), classes=(0, 1), metrics=figures, n_labels=505)
    queue.set_meta(model_version=6, campaign=json.dumps(campaign_record(mv)))
    code, body = call(f"{base}/campaign")
    assert code == 200 and (body["model_version"], body["record_version"], body["n_labels"]) == (6, 6, 505)
    est = body["estimates"]
    assert est["available"] is True and est["note"] is None and est["accuracy"] == {"estimate": 0.93, "low": 0.9, "high": 0.95}
    assert est["labels_saved"] == {"estimate": 895, "low": 395, "high": 1595} and est["hours_spent"] == 0.42 and est["budget"] == 1000
    assert est["curve"] == {"a": 0.95, "b": 0.6, "c": 0.5} and est["accuracy_at_budget"]["low"] == 0.92
    assert body["stop"]["fired"] is True and body["stop"]["rules"] == {"stable_predictions": {"version": 4, "n_labels": 505}}
    assert body["auto_accept"] == {"on": True, "target": 0.99, "threshold": 0.97, "precision_lower_bound": 0.991, "labels_needed": 0,
                                   "paused": False, "class_thresholds": {"1": 0.95},
                                   "audit": {"n": 40, "correct": 40, "precision_lower_bound": 0.928}}
    assert body["labeling"] == {}  # (a service not built for a strategy: see the test below)
    assert est["random_beyond_items"] is None  # (no scorer has counted the items streamed)
    # Random sampling's fitted curve reaching the accuracy only past every item streamed: the savings are a bound (as in report).
    for streamed, beyond in ((5000, False), (1000, True)):
        queue.r.hset(queue.k.pool_stats, "read", streamed)
        body = call(f"{base}/campaign")[1]
        assert body["queue"]["streamed"] == streamed and body["estimates"]["random_beyond_items"] is beyond, body["estimates"]["random_labels"]
    # A model of publish-model live: it carries no campaign figures, and that is why (not "too few control labels").
    user = ModelVersion(version=7, onnx=b"x", sha256=ModelVersion.digest(b"x"), classes=(0, 1), metrics={"holdout_accuracy": 0.9}, source="user")
    queue.set_meta(model_version=7, campaign=json.dumps(campaign_record(user)))
    est = call(f"{base}/campaign")[1]["estimates"]
    assert est["available"] is False and est["note"].startswith("none while a published model is live"), est
    # As the scorer records it, over the retrainer's v6: the campaign's figures and stop rules stay, said to be v6's
    # (they vanished: "not enough control labels", the stop rule that had fired no longer shown; report kept them).
    queue.set_meta(campaign=json.dumps(campaign_record(user, json.dumps(campaign_record(mv)))))
    body = call(f"{base}/campaign")[1]
    assert (body["model_version"], body["record_version"], body["n_labels"]) == (7, 6, 505)
    assert body["estimates"]["available"] is True and body["stop"]["rules"] == {"stable_predictions": {"version": 4, "n_labels": 505}}
    queue.set_meta(campaign="not json")  # (read as no record: not a 500)
    assert call(f"{base}/campaign")[1]["estimates"]["available"] is False


def test_the_openapi_document_describes_the_campaign_reply(api) -> None:
    base = api[0]
    doc = call(f"{base}/openapi.json")[1]
    op = doc["paths"]["/campaign"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Campaign"}
    assert "503" in op["responses"] and "security" not in op
    schemas = doc["components"]["schemas"]
    assert set(schemas["Campaign"]["required"]) == {"namespace", "model_version", "estimates", "stop", "auto_accept", "queue"}
    assert {"accuracy", "labels_saved", "hours_saved", "control_labels_needed", "curve"} <= set(schemas["Estimates"]["properties"])
    assert {"threshold", "precision_lower_bound", "labels_needed", "paused", "audit"} <= set(schemas["AutoAccept"]["properties"])
    assert {"estimate", "low", "high"} == set(schemas["Interval"]["properties"])


def test_the_labeling_page_in_a_real_browser(redis_client: redis.Redis, namespace: str, node: str, chromium: str) -> None:
    # Chromium, not a fake DOM: the page's Content-Security-Policy must let its own script and
    # style run (nothing in the console) while producer metadata stays text.
    bus, topics = InMemoryBus(), Topics("browser")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    metadata = [{"image": pixel, "note": "<b>x</b><script>alert(1)</script>"}, {}, {}, {}, {}]
    queue.add([f"i{j}" for j in range(5)], np.linspace(0.9, 0.5, 5), np.eye(5, dtype=np.float32), metadata)
    queue.set_meta(model_version=3, ranked_version=3, classes=json.dumps([0, 1, 2]), task="multiclass")
    with serving(LabelService(queue, bus, topics), parse_tokens("ann-0123456789abcdef ann\n")) as base:
        seen = run_script(node, str(Path(__file__).parents[1] / "browser" / "labeling_page.mjs"), base, "ann-0123456789abcdef", chromium, timeout=120)
    assert "script-src 'sha256-" in seen["csp"] and seen["shown"] == ["i0", "i1", "i2", "i3"]
    assert seen["image"] == 1 and seen["metadata"][1] == "<span>&lt;b&gt;x&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;</span>"
    assert seen["buttons"] == ["[1] 0", "[2] 1", "[3] 2"] and "field 'label'" in seen["refused"]
    # Only the refused answer's own 400 in the console: no CSP violation, no script error.
    assert [m for m in seen["console"] if "status of 400" not in m] == [], seen["console"]
    labels = [decode_label(m.value) for m in bus.messages(topics.labels)]
    assert [(lab.item_id, lab.labeler_id, lab.label) for lab in labels] == [("i0", "ann", 1), ("i2", "ann", 2)]
    assert queue.skipped_by("ann", ["i1"]) == [True] and seen["session"] == "ann-0123456789abcdef"


def test_the_labeling_page_sends_label_sets_on_purpose_in_a_real_browser(redis_client: redis.Redis, namespace: str, chromium: str,
                                                                          node: str) -> None:
    # (a multi-label audit: an empty Submit sent "none of these applies", and no key sent a set)
    bus, topics = InMemoryBus(), Topics("tags")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add([f"t{j}" for j in range(5)], np.linspace(0.9, 0.5, 5), np.eye(5, dtype=np.float32))
    queue.set_meta(model_version=2, ranked_version=2, classes=json.dumps(["cat", "dog", "owl"]), task="multilabel")
    with serving(LabelService(queue, bus, topics), parse_tokens("ann-0123456789abcdef ann\n")) as base:
        seen = run_script(node, str(Path(__file__).parents[1] / "browser" / "labeling_page.mjs"), base, "ann-0123456789abcdef", chromium, "--tags",
                          timeout=120)
    assert seen["errors"] == [] and seen["buttons"] == ["[1] cat", "[2] dog", "[3] owl", "[0] none of these"]
    assert seen["emptyEnter"]["item"] == seen["answered"][1] and "or press 0: none of these" in seen["emptyEnter"]["message"]
    labels = [decode_label(m.value) for m in bus.messages(topics.labels)]
    assert [(lab.item_id, lab.labels) for lab in labels] == list(zip(seen["answered"], [("cat", "owl"), ("dog",), ()], strict=True))


def test_the_labeling_page_at_work_in_a_real_browser(redis_client: redis.Redis, namespace: str, chromium: str, node: str) -> None:
    # A labeler at work on feature-only items (Chromium): the features by name in a table, the
    # stop banner, a typed answer and then 40 answers by keyboard (all land: the focus left the
    # text box), their own count and rate, a correction of the last answer that supersedes it
    # in the training set, and "/" to type again.
    from activestream.retrainer.training_set import TrainingSet
    from activestream.scorer.versions import stop_signal

    bus, topics = InMemoryBus(), Topics("work")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    n = 50
    X = np.column_stack([np.arange(n), np.full(n, 0.123456), np.full(n, -2.5)]).astype(np.float32)
    queue.add([f"w{j:02d}" for j in range(n)], np.linspace(0.9, 0.1, n), X)
    stop = stop_signal(4, {"stop": 1.0, "stop_stable_predictions_version": 4.0, "stop_stable_predictions_n_labels": 505.0})
    queue.set_meta(model_version=4, ranked_version=4, classes=json.dumps([0, 1, 2]), task="multiclass",
                   feature_names=json.dumps(["region-centroid-col", "intensity-mean", "hue-mean"]), stop=json.dumps(stop))
    with serving(LabelService(queue, bus, topics), parse_tokens("ann-0123456789abcdef ann\n")) as base:
        assert call(f"{base}/status")[1]["feature_names"] == ["region-centroid-col", "intensity-mean", "hue-mean"]
        seen = run_script(node, str(Path(__file__).parents[1] / "browser" / "labeling_page.mjs"), base, "ann-0123456789abcdef", chromium, "--work",
                          timeout=180)
    assert seen["errors"] == []
    assert seen["features"] == [["TH:region-centroid-col", "TD:0", "TH:intensity-mean", "TD:0.1235", "TH:hue-mean", "TD:-2.5"]]
    assert "stable predictions rule fired at 505 labels (model v4)" in seen["stop"] and "labeling may go on; it is a signal, not a lock" in seen["stop"]
    assert seen["focusAfterTyped"] != "answer" and seen["answerValue"] == ""  # (no number typed into the box)
    labels = [decode_label(m.value) for m in bus.messages(topics.labels)]
    want = [(item, int(key) - (j > 0)) for j, (item, key) in enumerate(seen["answered"])]  # (typed "2"; then key k is class k - 1)
    assert len(want) == 41 and len({item for item, _ in want}) == 41
    assert [(lab.item_id, lab.label) for lab in labels[:41]] == want  # every keyboard answer landed, on its item
    assert seen["mine"].startswith("you: 41 this session · ") and seen["mine"].endswith("/min")
    # The correction: the last answered item again, labeled anew (its own label id); the item on screen comes back.
    last_item, last_key = seen["answered"][-1]
    assert seen["correcting"]["item"] == last_item and f"({int(last_key) - 1})" in seen["correcting"]["note"]
    assert seen["afterCorrection"]["item"] not in {item for item, _ in seen["answered"]} and seen["afterCorrection"]["note"]
    assert f"item {last_item} is now 2" in seen["afterCorrection"]["message"] and seen["mineAfter"].startswith("you: 41 ")
    (fix,) = labels[41:]
    assert (fix.item_id, fix.label, fix.labeler_id) == (last_item, 2, "ann") and fix.label_id != labels[40].label_id
    assert np.array_equal(fix.features, labels[40].features)
    training = TrainingSet()
    assert [training.add(lab) for lab in labels][-1] == "updated"
    assert len(training) == 41 and training.items[last_item].label == 2  # the latest label of the item wins
    assert queue.n_labeled() == 41
    assert seen["focusAfterSlash"] == "answer" and seen["valueAfterSlash"] == "" and seen["focusAfterEscape"] != "answer"


def test_a_correction_supersedes_the_last_label_and_keeps_its_control_flag(redis_client: redis.Redis, namespace: str) -> None:
    # "Correct the last answer" is a new label (its own id) for the same item by the same labeler:
    # it takes the first label's features and control flag (the control record went with the
    # label), and only the labeler's own last label can be corrected.
    bus, topics = InMemoryBus(), Topics("fix")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32))
    queue.set_meta(ranked_version=1)
    service = LabelService(queue, bus, topics, explore=1.0)
    (first,) = service.lease(1, "ann")
    assert first.control
    assert service.submit(first.id, labeler_id="ann", label=1, label_id="L1")
    with serving(service) as base:
        assert call(f"{base}/labels", {"item_id": first.id, "label": 0, "labeler_id": "bob"})[0] == 400  # (not bob's last label)
        assert call(f"{base}/labels", {"item_id": first.id, "label": 0, "labeler_id": "ann", "label_id": "L2"}) == (200, {"accepted": True})
        assert call(f"{base}/labels", {"item_id": first.id, "label": 0, "labeler_id": "ann", "label_id": "L2"}) == (200, {"accepted": False})
    one, fix = (decode_label(m.value) for m in bus.messages(topics.labels))
    assert (fix.item_id, fix.label_id, fix.label, fix.control) == (first.id, "L2", 0, True) and one.control
    assert np.array_equal(fix.features, one.features) and queue.n_labeled() == 1 and queue.n_waiting() == 1


def test_the_terminal_labeler_hides_the_control_flag_and_ends_cleanly_on_end_of_input(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.terminal import label_from_topic, prompt_answer

    bus, topics = InMemoryBus(), Topics("tty")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32), [{"src": "cam"}, {"src": "cam"}])
    queue.set_meta(ranked_version=1)
    assert Dispatcher(queue, bus, topics, max_outstanding=5, explore=1.0, seed=0).dispatch() == 2
    assert all(decode_queue_entry(m.value).metadata.get("control") for m in bus.messages(topics.queue))
    typed = iter(["1"])

    def keyboard(prompt: str) -> str:  # one answer, then end of input (what Ctrl-D gives input())
        print(prompt)
        answer = next(typed, None)
        if answer is None:
            raise EOFError
        return answer

    monkeypatch.setattr("builtins.input", keyboard)
    assert label_from_topic(bus, topics, prompt_answer, labeler_id="ann", idle_timeout=0.5) == 1  # no traceback: it returns
    out = capsys.readouterr().out
    assert out.count("metadata={'src': 'cam'}") == 2 and "control" not in out
    (lab,) = [decode_label(m.value) for m in bus.messages(topics.labels)]
    assert lab.label == 1 and lab.control  # (the flag still makes it a control label)


def test_declared_classes_refuse_any_other_answer_and_are_what_the_page_offers(redis_client: redis.Redis, namespace: str) -> None:
    """ACTIVESTREAM_CLASSES: 'merlot', 'Barolo' or ' barbera' in a barbera/barolo/grignolino campaign is a 400 naming the
    item, the field and the classes, and nothing is published; the page offers the declared classes before any model."""
    bus, topics = InMemoryBus(), Topics("cls")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.9, 0.5]), np.eye(2, dtype=np.float32), [{}, {}])
    with serving(LabelService(queue, bus, topics, classes=("barbera", "barolo", "grignolino"))) as base:
        assert call(f"{base}/status")[1]["classes"] == ["barbera", "barolo", "grignolino"]
        call(f"{base}/lease?k=2&labeler=ann")
        for wrong in ("merlot", "Barolo"):
            code, reply = call(f"{base}/labels", {"item_id": "a", "label": wrong, "labeler_id": "ann"})
            assert code == 400 and reply["error"] == (f"item 'a': field 'label': {wrong!r} is not one of this campaign's classes "
                                                      "(barbera, barolo, grignolino; ACTIVESTREAM_CLASSES)"), reply
        assert bus.messages(topics.labels) == [] and queue.n_leased() == 2  # nothing accepted, the lease still ann's
        assert call(f"{base}/labels", {"item_id": "a", "label": "barolo", "labeler_id": "ann"}) == (200, {"accepted": True})
        assert [decode_label(m.value).label for m in bus.messages(topics.labels)] == ["barolo"]
    with serving(LabelService(queue, bus, topics, classes=(0, 1, 2))) as base:
        code, reply = call(f"{base}/labels", {"item_id": "b", "labels": [None], "labeler_id": "ann"})  # (not a 500)
        assert code == 400 and "None is not one of this campaign's classes" in reply["error"]
    # A labeler API started without the setting checks the classes the campaign recorded (another service was started with it).
    assert queue.record_declared_classes(("barbera", "barolo", "grignolino")) is None
    with serving(LabelService(queue, bus, topics)) as base:
        assert call(f"{base}/status")[1]["classes"] == ["barbera", "barolo", "grignolino"]
        code, reply = call(f"{base}/labels", {"item_id": "b", "label": "merlot", "labeler_id": "ann"})
        assert code == 400 and "'merlot' is not one of this campaign's classes" in reply["error"]
        assert len(bus.messages(topics.labels)) == 1 and queue.n_labeled() == 1  # refused before the item was claimed


def test_the_terminal_labeler_shows_classes_and_feature_names_and_asks_again_for_an_unknown_class() -> None:
    from activestream.labeling.terminal import TerminalPrompt

    def prompt(answers: list[str], **kw: object) -> tuple[TerminalPrompt, list[str]]:
        typed, said = iter(answers), []
        return TerminalPrompt(ask=lambda p: (said.append(p), next(typed))[1], say=said.append, **kw), said  # type: ignore[arg-type]

    codes, _ = prompt(["01"], classes=("01", "02"), declared=True)
    assert codes("c1", None, {}) == "01"  # (a class's own text, not the integer 1)
    declared, said = prompt(["merlot", " barolo "], classes=("barbera", "barolo"), declared=True, feature_names=["alcohol", "hue"])
    assert declared("w1", [13.2, 1.05], {"src": "lab"}) == "barolo"
    assert "item w1  metadata={'src': 'lab'}" in said and "  alcohol=13.2  hue=1.05" in said and "  classes: barbera, barolo" in said
    assert any("'merlot' is not one of this campaign's classes" in line for line in said)
    # Undeclared: a class not seen before is typed twice (a typo is caught), then it is one of the classes.
    open_, said = prompt(["Barolo", "barolo", "merlot", "merlot", "merlot"], classes=("barbera", "barolo"))
    assert open_("w2", [1.0] * 50, {}) == "barolo"  # the second answer, a known class, wins
    assert any("'Barolo' is a new class" in line for line in said) and any("(+10 more)" in line for line in said)
    assert open_("w3", None, {}) == "merlot" and open_("w4", None, {}) == "merlot"  # typed twice, then known
    assert open_.classes == ["barbera", "barolo", "merlot"]


def test_the_terminal_labeler_takes_tag_sets_in_a_multilabel_campaign_and_publishes_them_as_labels(redis_client: redis.Redis,
                                                                                                    namespace: str) -> None:
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.terminal import TerminalPrompt, label_from_topic

    typed, said = iter(["cat, owl", "zebra", "cat, dog", "-", "", "owl,owl"]), []
    ask = TerminalPrompt(("cat", "dog", "owl"), declared=True, multilabel=True, ask=lambda p: (said.append(p), next(typed))[1],
                         say=said.append)
    assert ask("a", None, {}) == ("cat", "owl")
    assert ask("b", None, {}) == ("cat", "dog")  # ('zebra' refused: asked again)
    assert any("'zebra' is not one of this campaign's classes" in line for line in said) and "  tags: cat, dog, owl" in said
    assert ask("c", None, {}) == () and ask("d", None, {}) is None and ask("e", None, {}) == ("owl",)  # none apply; skip; once
    again = iter(["cat, fox", "cat, fox"])
    undeclared = TerminalPrompt(("cat",), multilabel=True, ask=lambda p: next(again))
    assert undeclared("f", None, {}) == ("cat", "fox") and undeclared.classes == ["cat", "fox"]  # a new tag typed twice
    # What it publishes is a label set the labeling service and the retrainer take as such.
    bus, topics = InMemoryBus(), Topics("tags")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["i0", "i1"], np.array([0.2, 0.9]), np.ones((2, 3), dtype=np.float32))
    Dispatcher(queue, bus, topics, max_outstanding=5).dispatch()
    answers = iter([("cat", "owl"), ()])
    assert label_from_topic(bus, topics, lambda *a: next(answers), labeler_id="ann", max_items=2, idle_timeout=0.5) == 2
    assert [(lab.label, lab.labels) for lab in (decode_label(m.value) for m in bus.messages(topics.labels))] == [
        (None, ("cat", "owl")), (None, ())]


def test_a_tag_given_twice_is_one_tag(redis_client: redis.Redis, namespace: str) -> None:
    # (POST /labels {"labels": ["cat", "cat"]} was published and exported as two tags)
    bus, topics = InMemoryBus(), Topics("dup")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a"], np.array([0.5]), np.ones((1, 3), dtype=np.float32))
    assert LabelService(queue, bus, topics).submit("a", labeler_id="ann", labels=["cat", "owl", "cat"])
    assert [decode_label(m.value).labels for m in bus.messages(topics.labels)] == [("cat", "owl")]


def test_campaign_shows_the_settings_the_labeler_api_leases_by(redis_client: redis.Redis, namespace: str) -> None:
    from activestream.labeling.factory import make_label_service
    from activestream.labeling.routes import campaign
    from activestream.scorer.strategies import Strategy

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    svc = make_label_service(Strategy("margin"), queue, InMemoryBus(), Topics("set"), explore=0.2, curriculum_labels=30, classes=("a", "b"))
    assert campaign(svc)["labeling"] == {"strategy": "margin", "explore": 0.2, "curriculum_labels": 30, "cold_start": "random",
                                         "classes": ["a", "b"]}


def test_a_queue_entry_read_after_its_lease_ran_out_is_passed_over(redis_client: redis.Redis, namespace: str) -> None:
    # (a labeler joining late, or a new group reading from the start, labeled items that had gone back to the queue)
    import argparse

    from activestream.commands.dispatcher import readers_group
    from activestream.commands.label import still_leased_to
    from activestream.labeling.dispatcher import Dispatcher
    from activestream.labeling.terminal import label_from_topic

    bus, topics = InMemoryBus(), Topics("stale")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["a", "b"], np.array([0.2, 0.9]), np.ones((2, 3), dtype=np.float32))
    assert Dispatcher(queue, bus, topics, max_outstanding=5, ack_timeout=0.05).dispatch() == 2
    time.sleep(0.2)
    assert label_from_topic(bus, topics, lambda *a: 1, labeler_id="ann", max_items=2, idle_timeout=0.5,
                            still_leased=still_leased_to(queue, "labelers")) == 0
    assert bus.messages(topics.labels) == []
    # Without the queue (no REDIS_URL), every entry is shown.
    assert label_from_topic(bus, topics, lambda *a: 1, labeler_id="bob", group="others", max_items=2, idle_timeout=0.5) == 2
    # Each campaign's dispatcher waits for its own labelers' group, the one `activestream label` joins by default.
    args = argparse.Namespace(readers_group=None, labeler_group="labelers")
    assert readers_group(args, topics) == "stale.labelers" == topics.group("labelers") == topics.labelers_group()
    assert readers_group(argparse.Namespace(readers_group=None, labeler_group="team-b"), topics) == "stale.labelers.team-b"
    assert readers_group(argparse.Namespace(readers_group="mine", labeler_group="labelers"), topics) == "mine"


def test_a_label_that_waits_for_anothers_hold_never_hands_the_item_back(redis_client: redis.Redis, namespace: str) -> None:
    # (a review: two requests' pipelines interleaving, the one whose claim leased the pending item can lose the hold to
    # the other, which publishes; the loser handed the item back to the queue, where a third labeler could lease it
    # while the winner's label went out)
    from activestream.labeling.service import BeingSubmitted

    queue = RankedQueue(redis_client, QueueKeys(namespace))
    queue.add(["i0"], np.array([0.5]), np.ones((1, 3), dtype=np.float32))
    service = LabelService(RankedQueue(redis_client, QueueKeys(namespace)), InMemoryBus(), Topics("held"))
    assert redis_client.set(queue.k.submitting("i0"), "the-winner", nx=True, px=60_000)  # (the other request's hold, taken first)
    with pytest.raises(BeingSubmitted):
        service.submit("i0", labeler_id="ann", label=1, label_id="the-loser")
    assert queue.lease_holder("i0", queue.now()) == "ann" and queue.depth() == 0  # (still out while the winner publishes)
    assert redis_client.get(queue.k.submitting("i0")) == b"the-winner"


def test_two_labels_of_one_item_sent_at_once_to_two_replicas_go_out_one_at_a_time(redis_client: redis.Redis, namespace: str) -> None:
    # (a concurrency audit: a retry sent to the other API replica at the same moment was accepted twice in 5 of 6 tries,
    # and one labeler's two labels of a held item both accepted: the label id was recorded only after the publish)
    import threading

    from activestream.labeling.service import BeingSubmitted

    bus, topics = InMemoryBus(), Topics("replicas")
    queue = RankedQueue(redis_client, QueueKeys(namespace))
    n = 20
    queue.add([f"i{j}" for j in range(n)], np.linspace(0, 1, n), np.ones((n, 3), dtype=np.float32))
    a, b = (LabelService(RankedQueue(redis_client, QueueKeys(namespace)), bus, topics) for _ in range(2))
    # One replica's label of an item is going out (held as claim_for_labels holds it): the other's waits.
    now = queue.now()
    assert queue.claim_for_labels(["i0"], "ann", 300.0, now, ["lab-a"], "request-a") == [(True, "ann", True)]
    with pytest.raises(BeingSubmitted, match="item 'i0': field 'item_id': another label of this item is being submitted"):
        b.submit("i0", labeler_id="ann", label=1, label_id="lab-b")
    queue.release_submissions([("i0", "lab-b")])  # (not its token: the hold stays)
    with pytest.raises(BeingSubmitted):
        b.submit("i0", labeler_id="ann", label=1, label_id="lab-b")
    queue.release_submissions([("i0", "request-a")])
    assert b.submit("i0", labeler_id="ann", label=1, label_id="lab-b") is True  # (sent again: taken)
    # The same label sent to both at once, round after round: one accepted, the other refused or a 409 to retry.
    outcomes: list[list[object]] = []
    for j in range(1, n):
        got: list[object] = []
        start = threading.Barrier(2)

        def send(service: LabelService, j: int = j, got: list[object] = got, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                got.append(service.submit(f"i{j}", labeler_id="ann", label=1, label_id=f"same-{j}"))
            except BeingSubmitted as exc:
                got.append(type(exc).__name__)

        threads = [threading.Thread(target=send, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes.append(got)
    assert all(got.count(True) == 1 for got in outcomes), outcomes
    ids = [decode_label(m.value).label_id for m in bus.messages(topics.labels)]
    assert len(ids) == len(set(ids)) == n  # each label went out once
    assert not [k for k in redis_client.scan_iter(f"{queue.k.submitting('')}*")]  # (no hold left behind)
