"""librdkafka's repeated log lines are held back (streams.kafka_logs): pure logic, with a fake clock."""

from __future__ import annotations

import logging

from activestream.streams.kafka_logs import RepeatFilter, line_kind

REFUSED = ("FAIL [activestream#consumer-3] [thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/bootstrap: Connect to "
           "ipv4#127.0.0.1:9092 failed: Connection refused (after {ms}ms in state CONNECT)")


def _record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("activestream.kafka.librdkafka", level, __file__, 1, "%s", (message,), None)


def test_repeats_of_a_line_differ_only_in_their_client_and_numbers() -> None:
    assert line_kind(REFUSED.format(ms=0)) == line_kind(REFUSED.format(ms=12).replace("consumer-3", "producer-1"))
    assert line_kind(REFUSED.format(ms=0)) != line_kind(REFUSED.format(ms=0).replace("refused", "timed out"))


def test_a_repeated_line_passes_once_a_window_with_the_count_it_held_back() -> None:
    now = [100.0]
    f = RepeatFilter(seconds=60.0, clock=lambda: now[0])
    passed = []
    for i in range(1200):  # 20 lines a second for 60 s (a consumer's reconnects with the broker away)
        now[0] = 100.0 + i * 0.05
        record = _record(REFUSED.format(ms=i % 3))
        if f.filter(record):
            passed.append(record.getMessage())
    now[0] = 160.0
    last = _record(REFUSED.format(ms=0))
    assert f.filter(last)
    assert len(passed) == 1 and passed[0] == REFUSED.format(ms=0)
    assert last.getMessage().endswith("(and 1199 more like it in 60 s)"), last.getMessage()
    now[0] = 161.0
    quiet = _record(REFUSED.format(ms=0))
    assert not f.filter(quiet)


def test_other_lines_and_other_levels_pass_at_once() -> None:
    f = RepeatFilter(seconds=60.0, clock=lambda: 0.0)
    assert f.filter(_record(REFUSED.format(ms=0)))
    assert f.filter(_record(REFUSED.format(ms=0), logging.WARNING))
    assert f.filter(_record("FAIL [activestream#producer-1] 127.0.0.1:9092/1: Disconnected (after 9626ms in state UP)"))
    assert not f.filter(_record(REFUSED.format(ms=5)))
    f.forget()
    assert f.filter(_record(REFUSED.format(ms=5)))
