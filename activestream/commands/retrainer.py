"""``activestream retrainer``: retrain on the labels topic and publish validated model versions.

Two engines on the same core (:class:`activestream.retrainer.service.Retrainer`): a
confluent-kafka loop (``--engine confluent``) or a faust-streaming app (``--engine faust``,
:mod:`activestream.retrainer.faust_app`), to which this module hands the bus's core and
the metrics server it built.
"""

from __future__ import annotations

import argparse
import contextlib
import logging

from activestream.commands import options
from activestream.wiring import CONNECTING, Stop, connect, make_retrainer, run_loop, serve_metrics, settings_from

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``retrainer`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser("retrainer", help="retrain on the labels topic and publish validated model versions")
    options.add_connection(p)
    options.add_loop(p)
    p.add_argument("--engine", choices=("confluent", "faust"), default="confluent", help="confluent-kafka loop or a faust-streaming app")
    options.add_estimator(p)
    p.add_argument("--resume", dest="retrainer_resume", action="store_const", const=1, default=None,
                   help="publish own versions over a user's model version (publish-model) instead of holding "
                        "(default: ACTIVESTREAM_RETRAINER_RESUME or hold)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Rebuild the training set from the labels log, then retrain as labels arrive, until stopped.

    Returns
    -------
    The exit code (0, or the Faust worker's); a bad setting exits with one ``error:`` line.
    """
    if args.engine == "faust":
        return run_faust(args)
    from prometheus_client import CollectorRegistry

    stop = Stop()
    s = settings_from(args)
    registry = CollectorRegistry()
    # (served first: a retrainer started while Kafka is away answers /healthz, 503 with the reason, while it waits)
    health = serve_metrics("retrainer", registry, s.metrics_port, s.metrics_host, problem=CONNECTING)
    s, bus, topics = connect(s, health=health, stop=stop)
    rt = make_retrainer(bus, topics, s, registry)
    from activestream.retrainer.service import WidthConflict

    try:
        rt.rebuild()
    except WidthConflict as exc:
        with contextlib.suppress(Exception):  # (the refusal is what to say)
            bus.close()
        raise SystemExit(f"error: retrainer: {exc}") from None
    print(f"retrainer: {len(rt.training)} labels rebuilt from the log, model v{rt.version}", flush=True)
    if rt.holding is not None:
        print(f"retrainer: holding for user model v{rt.holding}: no own version until restarted with --resume", flush=True)
    try:
        def step() -> int:
            n = rt.step(0.5)
            health.tick(model_version=rt.version, training_set=len(rt.training), last_error=rt.last_error, holding_user_version=rt.holding)
            return n

        run_loop(step, health, stop, burst=args.burst, max_messages=args.max_messages, problem=rt.trouble)
        if args.burst and rt.unused and rt.holding is None:  # drained: whatever is new goes into a version now
            rt.retrain()
        print(f"retrainer: {len(rt.training)} labels, model v{rt.version}", flush=True)
    except BaseException:
        with contextlib.suppress(Exception):  # (the error that stopped it is the one to see, not the same outage's at close)
            bus.close()
        raise
    bus.close()
    return 0


def run_faust(args: argparse.Namespace) -> int:
    """``--engine faust``: build the bus, the core and the metrics server, then run the Faust app on them.

    Returns
    -------
    The Faust worker's exit code (0 with ``--burst``).
    """
    from activestream.retrainer.faust_app import EarlyStop, FaustBroker, require_faust, run_faust_retrainer
    from activestream.retrainer.service import WidthConflict

    s = settings_from(args)
    require_faust()  # fail early, before any broker work, when faust-streaming is missing
    from prometheus_client import CollectorRegistry

    early = EarlyStop()  # a signal while connecting and rebuilding: exit instead of starting the worker
    try:
        registry = CollectorRegistry()
        # (served first: started while Kafka is away, it answers /healthz, 503 with the reason, while it waits)
        health = serve_metrics("retrainer", registry, s.metrics_port, s.metrics_host, problem=CONNECTING)
        s, bus, topics = connect(s, health=health, stop=lambda: early.requested)
        try:
            core = make_retrainer(bus, topics, s, registry)
            assert s.kafka_bootstrap_servers  # (make_bus refused to start without one)
            broker = FaustBroker(s.kafka_bootstrap_servers, s.topic_prefix, dict(s.kafka_config))
            try:
                return run_faust_retrainer(core, health, broker, early, burst=args.burst, max_messages=args.max_messages)
            except WidthConflict as exc:
                raise SystemExit(f"error: retrainer: {exc}") from None
        finally:
            bus.close()
    finally:
        early.restore()
