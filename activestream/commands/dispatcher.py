"""``activestream dispatcher``: move top-ranked items to the queue topic, for labelers that consume a topic."""

from __future__ import annotations

import argparse
import logging

from activestream.commands import options
from activestream.streams.topics import Topics
from activestream.wiring import (
    CONNECTING,
    REDIS_TIMEOUT,
    STEP_STUCK_SECONDS,
    Stop,
    connect,
    explore_of,
    join_campaign,
    make_queue,
    run_loop,
    serve_metrics,
    settings_from,
    through_redis_outages,
)

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``dispatcher`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("dispatcher", help="move top-ranked items to the queue topic for labelers that consume a topic")
    options.add_connection(p)
    options.add_loop(p)
    p.add_argument("--labeler-group", default="labelers", help="who the dispatched items are leased to")
    p.add_argument("--max-outstanding", type=options.count, default=100, help="most items out with labelers at once (default: %(default)s)")
    p.add_argument("--readers-group", default=None,
                   help="the consumer group the labelers read the queue topic with (default: <topic prefix>.labelers[.<labeler group>], the one "
                        "activestream label --labeler-group joins): items are sent only while it has members")
    p.add_argument("--always-dispatch", action="store_true", help="send items whether or not anyone reads the queue topic")
    p.add_argument("--ack-timeout", type=options.positive_seconds, default=300.0, help="seconds before an unlabeled item returns to the queue (default: %(default)s)")
    p.set_defaults(func=run)


def readers_group(args: argparse.Namespace, topics: Topics) -> str:
    """The consumer group whose members the dispatcher waits for: ``--readers-group``, else the one ``activestream label
    --labeler-group`` of the same labeler group reads in (:meth:`Topics.labelers_group`: the campaign's own)."""
    return str(args.readers_group) if args.readers_group else topics.labelers_group(args.labeler_group)


def run(args: argparse.Namespace) -> int:
    """Run the dispatcher until SIGTERM / SIGINT (or ``--burst``).

    Returns
    -------
    0; a bad setting exits with one ``error:`` line.
    """
    from prometheus_client import CollectorRegistry

    from activestream.labeling.dispatcher import Dispatcher, consumer_group
    from activestream.rankedqueue.outage import RedisPause

    stop = Stop()
    s = settings_from(args)
    registry = CollectorRegistry()
    # (served first: a dispatcher started while Kafka or Redis is away answers /healthz, 503 with the reason, while it waits)
    health = serve_metrics("dispatcher", registry, s.metrics_port, s.metrics_host, stuck_after=STEP_STUCK_SECONDS, problem=CONNECTING)
    s, bus, topics = connect(s, health=health, stop=stop)
    queue = make_queue(s, socket_timeout=REDIS_TIMEOUT)  # (a hung Redis: paused, not blocked)
    through_redis_outages(lambda: join_campaign(s, queue), "dispatcher start-up", stop, health)  # (the namespace holds a campaign from now on)
    d = through_redis_outages(lambda: Dispatcher(queue, bus, topics, labeler_group=args.labeler_group, max_outstanding=args.max_outstanding,
                                                 group=consumer_group(s.topic_prefix, args.labeler_group), ack_timeout=args.ack_timeout,
                                                 registry=registry, max_skips=s.max_skips, explore=explore_of(s),
                                                 readers=None if args.always_dispatch else readers_group(args, topics)),
                                      "dispatcher start-up", stop, health)
    pause = RedisPause(what="dispatching")  # a Redis outage: wait (bounded back-off), /healthz says why
    try:
        run_loop(lambda: pause.run(lambda: d.step(0.5), d.recover), health, stop, burst=args.burst, max_messages=None,
                 problem=lambda: pause.reason or d.trouble())
    finally:
        bus.close()
    return 0
