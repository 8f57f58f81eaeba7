"""``activestream label-studio``: a Label Studio project as the labeling front end of a namespace."""

from __future__ import annotations

import argparse
import logging
import secrets
from pathlib import Path
from typing import Any

from activestream.commands import options
from activestream.config import Settings, declared_classes, feature_name_list
from activestream.streams.bus import Bus
from activestream.streams.topics import Topics
from activestream.wiring import Stop, connect, explore_of, join_campaign, make_queue, serve_metrics

log = logging.getLogger(__name__)


def add_parser(subparsers: options.Subparsers) -> None:
    """Register ``label-studio`` on the ``activestream`` parser's subcommands."""
    p = subparsers.add_parser(
        "label-studio", help="connect the namespace to a Label Studio project: its top items as tasks, annotations as labels",
        description="Keep the top N of the ranked queue as tasks of a Label Studio project (served by Label Studio's "
        "'Uncertainty sampling' in activestream's order) and turn its annotations into labels. URL and token from "
        "ACTIVESTREAM_LABEL_STUDIO_URL / ACTIVESTREAM_LABEL_STUDIO_TOKEN.")
    options.add_connection(p)
    options.add_metrics_port(p)
    p.add_argument("--url", default=None, help="Label Studio's URL (default: ACTIVESTREAM_LABEL_STUDIO_URL)")
    p.add_argument("--project", type=options.count, default=None, help="the project id (default: ACTIVESTREAM_LABEL_STUDIO_PROJECT)")
    p.add_argument("--create-project", metavar="TITLE", default=None,
                   help="create a project with this title, or connect the one of that title (its id is printed)")
    p.add_argument("--label-config", metavar="FILE", default=None,
                   help="with --create-project: your own labeling config (XML with a <Choices> control); "
                   "default: one generated from the live model's classes and task")
    p.add_argument("--classes", default=None, help="with --create-project: comma-separated classes (default: ACTIVESTREAM_CLASSES, else the live model's)")
    p.add_argument("--task", choices=("multiclass", "multilabel"), default=None, help="with --classes: one choice or several (default multiclass)")
    p.add_argument("--data-field", default=None, help="the item metadata field the generated config shows (default: the features as a table)")
    p.add_argument("--data-type", choices=("text", "image"), default="text", help="how --data-field is shown (default %(default)s)")
    p.add_argument("--top-n", type=options.count, default=None, help="items kept as tasks (default: ACTIVESTREAM_LABEL_STUDIO_TOP_N or 100)")
    p.add_argument("--webhook-url", default=None, help="URL Label Studio posts annotations to (default: ACTIVESTREAM_LABEL_STUDIO_WEBHOOK_URL; "
                   "unset: polling only)")
    p.add_argument("--webhook-host", default="127.0.0.1", help="address the webhook receiver listens on (default %(default)s)")
    p.add_argument("--webhook-port", type=options.port, default=0, help="its port (default: any free port)")
    p.add_argument("--sync-every", type=options.positive_seconds, default=2.0, help="seconds between syncs of the queue (default %(default)s)")
    p.add_argument("--poll-every", type=options.positive_seconds, default=30.0, help="seconds between polls for annotations (default %(default)s)")
    p.add_argument("--lease-ttl", type=options.positive_seconds, default=3600.0,
                   help="seconds the tasks' leases outlive a stopped connector (default %(default)s)")
    p.add_argument("--grace", type=options.seconds, default=600.0,
                   help="seconds a task whose item left the top is kept, unserved, before it is deleted (default %(default)s)")
    p.add_argument("--burst", action="store_true", help="one sync and one poll, then exit")
    p.set_defaults(func=run)


def resolve_project(args: argparse.Namespace, s: Settings, client: Any, bus: Bus, topics: Topics, url: str, project: int | None) -> int | None:
    """The project to connect: ``project`` if given, else the one titled ``--create-project`` (created if none is)."""
    from activestream.labeling.label_studio_config import labeling_config
    from activestream.labeling.label_studio_project import create_project, find_project, live_classes

    found = find_project(client, args.create_project) if args.create_project and not project else None
    if found is not None:
        project = found
        print(f"label-studio: project {project} is titled {args.create_project!r}: connecting it", flush=True)
    elif args.create_project and not project:
        if args.label_config:
            config = Path(args.label_config).read_text(encoding="utf-8")
        else:
            classes, task = live_classes(bus, topics)
            given = args.classes if args.classes and args.classes.strip() else s.classes  # (--classes, else ACTIVESTREAM_CLASSES)
            if given:
                classes, task = tuple(c.strip() for c in given.split(",") if c.strip()), args.task or s.task or task or "multiclass"
            try:
                config = labeling_config(classes, task, data_field=args.data_field, data_type=args.data_type)
            except ValueError as exc:
                raise SystemExit(f"error: --create-project: {exc}") from None
        project = create_project(client, args.create_project, config)
        print(f"label-studio: created project {project}: {url.rstrip('/')}/projects/{project} "
              f"(next time: --project {project} or ACTIVESTREAM_LABEL_STUDIO_PROJECT={project})", flush=True)
    return project


def run(args: argparse.Namespace) -> int:
    """Run the connector until SIGTERM / SIGINT (or ``--burst``).

    Returns
    -------
    0; a missing setting, SDK or project, or a refused token, exits with one ``error:`` line (an unreachable
    Label Studio is waited for, at start as later).
    """
    from prometheus_client import CollectorRegistry

    from activestream.labeling.label_studio import LabelStudioConnector
    from activestream.labeling.label_studio_project import api_problem, ensure_webhook, load_client, wait_for_server
    from activestream.labeling.label_studio_webhook import serve_webhook
    from activestream.labeling.service import LabelService

    stop = Stop()
    s, bus, topics = connect(args)
    url, token = args.url or s.label_studio_url, s.label_studio_token
    if not url or not token:
        bus.close()
        raise SystemExit("error: set ACTIVESTREAM_LABEL_STUDIO_URL (or --url) and ACTIVESTREAM_LABEL_STUDIO_TOKEN")
    try:
        import httpx

        http = httpx.Client(timeout=30.0)
        client = load_client(url, token, http=http)
    except ImportError as exc:
        bus.close()
        raise SystemExit(f"error: {exc}") from None
    webhook = None
    conn = None
    project = args.project or s.label_studio_project
    try:
        if not wait_for_server(client, url, stop):
            return 0
        project = resolve_project(args, s, client, bus, topics, url, project)
        if not project:
            raise SystemExit("error: set ACTIVESTREAM_LABEL_STUDIO_PROJECT (or --project), or give --create-project TITLE")
        queue = make_queue(s, socket_timeout=30.0)
        join_campaign(s, queue)  # (recorded, as the labeler API does)
        service = LabelService(queue, bus, topics, lease_ttl=s.lease_ttl, max_skips=s.max_skips, classes=declared_classes(s))
        registry = CollectorRegistry()
        names = feature_name_list(s)
        conn = LabelStudioConnector(client, project, queue, service, bus, topics, top_n=args.top_n or s.label_studio_top_n, lease_ttl=args.lease_ttl,
                                    grace=args.grace, names=names, explore=explore_of(s), registry=registry)
        conn.ensure_uncertainty_sampling()
        hook_url = webhook_path(args.webhook_url or s.label_studio_webhook_url)
        if hook_url:
            secret = secrets.token_urlsafe(24)
            webhook = serve_webhook(conn.events, secret, args.webhook_port, args.webhook_host)
            ensure_webhook(client, project, hook_url, secret)
            print(f"label-studio: webhook receiver on http://{args.webhook_host}:{webhook.server_port}/webhook "
                  f"(Label Studio posts to {hook_url})", flush=True)
        health = serve_metrics("label-studio", registry, s.metrics_port, s.metrics_host)
        total = [0]

        def tick(n: int) -> None:
            total[0] += n
            health.tick(processed=total[0], project=project)

        conn.run(should_stop=stop, sync_every=args.sync_every, poll_every=args.poll_every, on_tick=tick, on_error=health.down, burst=args.burst)
    except Exception as exc:
        problem = api_problem(exc, url, project or None)
        if problem is None:
            raise
        raise SystemExit(f"error: {problem}") from None
    finally:
        if webhook is not None:
            webhook.shutdown()
            webhook.server_close()
        if conn is not None:
            conn.close()
        http.close()
        bus.close()
    return 0


def webhook_path(url: str | None) -> str | None:
    """The URL Label Studio posts annotations to: ``url``, with the receiver's ``/webhook`` path when it names none
    (a bare ``http://host:port`` had Label Studio post to ``/``, which the receiver does not serve).

    >>> webhook_path("http://connector:8092"), webhook_path("http://proxy/ls-hook")
    ('http://connector:8092/webhook', 'http://proxy/ls-hook')
    """
    if not url:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/webhook")) if parts.path in ("", "/") else url
