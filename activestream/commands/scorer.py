"""``activestream scorer``: score the items topic into the Redis queue; hot-swap models and re-rank."""

from __future__ import annotations

import argparse
import logging

from activestream.commands import options
from activestream.config import feature_name_list
from activestream.wiring import (
    CONNECTING,
    REDIS_TIMEOUT,
    STEP_STUCK_SECONDS,
    Stop,
    connect,
    join_campaign,
    make_queue,
    run_loop,
    serve_metrics,
    settings_from,
    through_redis_outages,
)

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``scorer`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("scorer", help="score the items topic into the Redis queue; hot-swap models and re-rank")
    options.add_connection(p)
    options.add_loop(p)
    p.add_argument("--strategy", default=None, help="scoring strategy (default: ACTIVESTREAM_STRATEGY or margin+kcenter)")
    p.add_argument("--batch-size", type=int, default=None, help="items per micro-batch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the scorer until SIGTERM / SIGINT (or ``--burst`` / ``--max-messages``).

    Returns
    -------
    0; a bad setting exits with one ``error:`` line.
    """
    from prometheus_client import CollectorRegistry

    from activestream.httpserver import periodic
    from activestream.scorer.service import Scorer
    from activestream.scorer.strategies import Strategy
    from activestream.scorer.versions import ArtifactStore
    from activestream.streams.topics import SCORER_GROUP

    stop = Stop()
    s = settings_from(args)
    registry = CollectorRegistry()
    # (served first: a scorer started while Kafka or Redis is away answers /metrics and /healthz, 503 with the reason, while it waits)
    health = serve_metrics("scorer", registry, s.metrics_port, s.metrics_host, stuck_after=STEP_STUCK_SECONDS, problem=CONNECTING)
    s, bus, topics = connect(s, transactional_name="scorer", health=health, stop=stop)
    # Groups are named under the topic prefix, so separate stacks on one broker never rebalance each other.
    queue = make_queue(s, socket_timeout=REDIS_TIMEOUT, segment_cache=True)  # (a hung Redis pauses the scorer, as a refused one does)
    try:  # (it checks the namespace's feature width in Redis: a Redis away at start-up is waited for)
        scorer = through_redis_outages(lambda: Scorer(
            bus, queue, topics, strategy=Strategy(s.strategy, s.seed), batch_size=s.batch_size,
            n_features=s.n_features, feature_names=feature_name_list(s),
            registry=registry, group=f"{s.topic_prefix}.{SCORER_GROUP}", auto_accept=bool(s.auto_accept), labels_per_hour=s.labels_per_hour,
            artifacts=ArtifactStore.from_setting(s.model_artifact_dir, s.model_artifact_max_mb), audit_share=s.audit_share),
            "scorer start-up", stop, health)
    except ValueError as exc:  # e.g. ACTIVESTREAM_N_FEATURES against what the namespace holds
        bus.close()
        raise SystemExit(f"error: scorer: {exc}") from None
    if scorer.feature_names:  # (the labeling page shows the features by name)
        names = scorer.feature_names
        through_redis_outages(lambda: scorer.queue.record_feature_names(names), "scorer start-up", stop, health)
    through_redis_outages(lambda: join_campaign(s, scorer.queue), "scorer start-up", stop, health)  # (it holds a campaign; ACTIVESTREAM_CLASSES recorded)
    # Start on the newest model, if there is one (Redis away: the first steps load it once it is back).
    scorer.pause.run(lambda: int(scorer.poll_models(to_end=True)), scorer.recover)

    def gauges() -> None:
        scorer.refresh_gauges()
        try:
            scorer.metrics.consumer_lag.labels(topic=topics.items).set(scorer.lag())
        except Exception as exc:  # noqa: BLE001 - the broker away (restarting): the gauge waits, scoring does not stop
            log.warning("consumer lag not read: %s", exc)
        health.tick(model_version=scorer.model_version, dead_letters=scorer.dead_letters)

    try:
        n = run_loop(lambda: scorer.step(0.5), health, stop, burst=args.burst, max_messages=args.max_messages, every=periodic(1.0, gauges),
                     problem=scorer.trouble)
        print(f"scorer: consumed {n} item messages; model v{scorer.model_version}", flush=True)
    finally:
        scorer.close()
        bus.close()
    return 0
