"""``activestream labeler-api``: the HTTP API for labelers and UIs (lease top-k, submit labels, skip)."""

from __future__ import annotations

import argparse
import logging
import time
import uuid

from activestream.commands import options
from activestream.config import declared_classes
from activestream.wiring import Stop, connect, explore_of, join_campaign, make_queue, serve_metrics

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``labeler-api`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("labeler-api", help="HTTP API for labelers and UIs: lease top-k, submit labels, skip")
    options.add_connection(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 for other machines)")
    p.add_argument("--port", type=options.port, default=8080, help="port of the API and the labeling page (default: %(default)s; 0: any free one)")
    options.add_metrics_port(p)
    p.add_argument("--strategy", default=None, help="its batch mode (+kmeans/+kcenter/+density/+falcun) shapes leased batches")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the labeler API until SIGTERM / SIGINT; ``/healthz`` says whether it reaches its Redis.

    Returns
    -------
    0; a bad setting, token file or taken port exits with one ``error:`` line.
    """
    from prometheus_client import CollectorRegistry

    from activestream.labeling.api import serve
    from activestream.labeling.auth import TokenFile, TokenFileError
    from activestream.labeling.factory import make_label_service
    from activestream.labeling.metrics import LabelingMetrics
    from activestream.scorer.strategies import Strategy

    stop = Stop()
    s, bus, topics = connect(args)
    try:
        tokens = TokenFile(s.labeler_tokens) if s.labeler_tokens else None  # (read again when the file changes)
    except TokenFileError as exc:
        bus.close()
        raise SystemExit(f"error: ACTIVESTREAM_LABELER_TOKENS: {exc}") from None
    if tokens is None:
        log.warning("labeler API without ACTIVESTREAM_LABELER_TOKENS: it takes the labeler id each request names")
    # entropy: each labeler process draws its own sampled batches (+falcun), restarts included
    # A request waits at most 5 s for Redis (then 503: its calls are small), instead of holding the API forever; the
    # requests queued behind it meanwhile are answered 503 at once (labeling.api.OUTAGE_HOLD_SECONDS).
    queue = make_queue(s, socket_timeout=5.0)
    join_campaign(s, queue)  # (recorded: the campaign's other labeling paths check them too; without the setting, submit reads them)
    service = make_label_service(Strategy(s.strategy, s.seed), queue, bus, topics, explore=explore_of(s), curriculum_labels=s.curriculum_labels,
                                 cold_start=s.cold_start, entropy=uuid.uuid4().int, classes=declared_classes(s))
    service.lease_ttl = s.lease_ttl
    service.flush_timeout = 5.0  # (a broker away: a 503 within 5 s, as for Redis, not every request held 30 s behind one label)
    service.max_skips = s.max_skips
    try:
        server = serve(service, args.port, args.host, tokens)
    except OSError as exc:  # e.g. the port is taken
        service.close()
        bus.close()
        raise SystemExit(f"error: labeler API on {args.host}:{args.port}: {exc.strerror or exc}") from None
    access = f"{len(tokens)} labeler token(s)" if tokens is not None else "no tokens"
    print(f"labeler API on http://{args.host}:{server.server_port} (the labeling page: GET /; GET /lease, POST /labels, POST /skip, "
          f"GET /status, GET /campaign, GET /openapi.json; {access})", flush=True)
    # /healthz says whether the API can reach its broker, which every label goes to: a reader at the end of the models topic,
    # whose polls meet a broker away (an ops restart day: /healthz said ok while every label was a 503 "backend: Kafka
    # unavailable"); made before /healthz is served (it asks the broker where the end is)
    watch = bus.consumer([topics.models], None, from_beginning=False)
    registry = CollectorRegistry()
    LabelingMetrics.create(registry, service.queue, service.queue.k.namespace)
    health = serve_metrics("labeler-api", registry, s.metrics_port, s.metrics_host)
    probe = make_queue(s, socket_timeout=2.0).r  # ... and its Redis
    try:
        while not stop():
            try:
                probe.ping()
                problem = None
            except Exception as exc:  # noqa: BLE001 - any failure to reach Redis makes the API unhealthy
                problem = f"redis: {type(exc).__name__}: {exc}"
            try:
                watch.consume(1, 0.0)
                problem = problem or watch.trouble()
            except Exception as exc:  # noqa: BLE001 - a Kafka error the reader raises: unhealthy too
                problem = problem or f"Kafka: {type(exc).__name__}: {exc}"
            if problem is None:
                health.tick()
            else:
                health.down(problem)
            time.sleep(0.5)
    finally:
        server.shutdown()
        watch.close()
        service.close()
        bus.close()
    return 0
