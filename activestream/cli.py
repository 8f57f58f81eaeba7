"""The ``activestream`` command: the root parser, and ``main``.

Each subcommand is a module of :mod:`activestream.commands` with ``add_parser(subparsers)``
and ``run(args) -> int``; this module only registers them, in the order ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
from typing import TextIO

from activestream.commands import (
    bench,
    dead_letters,
    demo,
    dispatcher,
    export,
    import_labels,
    label,
    label_studio,
    labeler_api,
    produce,
    publish_model,
    queue,
    report,
    retrainer,
    scorer,
    simulate,
    up,
)

log = logging.getLogger(__name__)

COMMANDS = (demo, simulate, scorer, retrainer, dispatcher, labeler_api, label_studio, queue, produce, import_labels, export, report, label, publish_model,
            dead_letters, up, bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``activestream`` parser with every subcommand registered.

    Returns
    -------
    The parser; each subcommand's namespace has ``func``, its ``run``.
    """
    parser = argparse.ArgumentParser(prog="activestream", description="Streaming active learning: rank, label, retrain, prove the savings.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (default: warnings and errors only)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    for subparser in sub.choices.values():  # (an error about its flags shows its own usage)
        subparser.set_defaults(subparser=subparser)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("activestream")
    except PackageNotFoundError:  # (run from a checkout that is not installed)
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), configure logging and run the subcommand.

    Arguments the parser does not know are an error, except for a subcommand that passes
    them on (``bench throughput``: the benchmark's own options, as ``args.extra``).

    Returns
    -------
    The subcommand's exit status; 2 when it refused with one ``error:`` line (``SystemExit`` with a message, Redis's
    or Kafka's credentials or rights refused); 1, with one ``error:`` line, when Redis or the Kafka broker cannot be reached (it may pass),
    or when the reader of its output went away (``activestream report | head``), without a traceback.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "pass_through", False):  # (the subcommand's usage: that is where the flag was given)
        args.subparser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from redis.exceptions import AuthenticationError, AuthorizationError
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisHung

    from activestream.streams.bus import TopicRefused

    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # (here, not at exit: a reader that left must meet the handler below)
        return code
    except (AuthenticationError, AuthorizationError) as exc:  # (a ConnectionError too: not "unreachable")
        print(f"error: Redis refused the credentials: {exc} (the password in REDIS_URL, or ACTIVESTREAM_REDIS_PASSWORD_FILE)", file=sys.stderr)
        return 2
    except (RedisDown, RedisHung) as exc:  # (a command run against a Redis that is not there; the services wait theirs out)
        print(f"error: Redis unreachable: {type(exc).__name__}: {exc} (REDIS_URL / --redis-url)", file=sys.stderr)
        return 1  # (a failure that may pass, not a refusal: `up` starts a service that met it again)
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a command's one-line refusal: the same status as the ones it returns
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except TopicRefused as exc:  # (a campaign whose topics the broker will not create: starting again would not mend it)
        print(f"error: {exc} (ACTIVESTREAM_NAMESPACE / ACTIVESTREAM_TOPIC_PREFIX name the topics)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # (before Exception, which would take it)
        if not _reader_left(sys.stdout):  # (another pipe than stdout broke: that is an error of its own)
            raise
        _silence_stdout()
        return 1
    except Exception as exc:
        if type(exc).__name__ != "KafkaException":  # (confluent-kafka's, not imported for every command to catch it)
            raise
        from activestream.streams.kafka_client import PERMANENT_ERRORS, error_codes
        # A broker away (a command run against it; a service's start): one line, status 1 (a failure that may pass:
        # `up` starts a service again on it), not a traceback.
        err = exc.args[0] if exc.args else exc
        text = err.str() if hasattr(err, "str") else str(err)
        if hasattr(err, "code") and err.code() in error_codes(PERMANENT_ERRORS):  # (credentials or rights: starting again won't do)
            print(f"error: Kafka refused: {text} (the ACTIVESTREAM_KAFKA_SASL_* / SSL_* settings, or the principal's ACLs)", file=sys.stderr)
            return 2
        print(f"error: Kafka: {text} (KAFKA_BOOTSTRAP_SERVERS / --kafka-bootstrap-servers)", file=sys.stderr)
        return 1
    finally:  # (what a refusal printed before its error line meets a reader that left here, not at exit)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()


def _silence_stdout() -> None:
    """The reader of stdout left (a pipe into head): stop quietly (Python's recipe, "Note on SIGPIPE")."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _reader_left(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe or socket whose reader closed it (the kernel flags its end with an error or a hang-up)."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # (no file descriptor: a test's capture, a closed stream)
        return False


if __name__ == "__main__":
    sys.exit(main())
