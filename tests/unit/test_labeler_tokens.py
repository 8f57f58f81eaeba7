"""Reading the labeler API's tokens file and its bearer tokens (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from activestream.labeling.auth import TokenFileError, load_tokens, parse_tokens


def test_tokens_map_bearer_headers_to_labelers() -> None:
    tokens = parse_tokens("# who labels\n\nann-0123456789abcdef ann\n  ann-phone-0123456789 ann  \nbob-0123456789abcdef bob\n")
    assert len(tokens) == 3
    assert tokens.labeler("Bearer ann-0123456789abcdef") == "ann"
    assert tokens.labeler("bearer  ann-phone-0123456789 ") == "ann"
    assert tokens.labeler("Bearer bob-0123456789abcdef") == "bob"
    for header in (None, "", "Bearer", "Bearer ", "Basic ann-0123456789abcdef", "ann-0123456789abcdef", "Bearer ann-0123456789abcdeX"):
        assert tokens.labeler(header) is None, header


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ann-0123456789abcdef\n", "line 1: expected '<token> <labeler id>', got 1 field(s)"),
        ("# x\nann-0123456789abcdef ann extra\n", "line 2: expected '<token> <labeler id>', got 3 field(s)"),
        ("short ann\n", "line 1: token shorter than 16 characters (labeler 'ann')"),
        ("zo\u00eb-0123456789abcdef zoe\n", "line 1: token has characters other than printable ASCII (labeler 'zoe')"),
        ("same-0123456789abcdef ann\nsame-0123456789abcdef bob\n", "line 2: the token of labeler 'bob' is already given to 'ann'"),
        ("# nobody yet\n\n", "no tokens (an empty file would lock every labeler out)"),
    ],
)
def test_a_bad_tokens_file_names_the_line_and_the_reason(text: str, message: str) -> None:
    with pytest.raises(TokenFileError) as err:
        parse_tokens(text, "tokens.txt")
    assert str(err.value).startswith("tokens.txt") and str(err.value).endswith(message)


def test_a_missing_or_binary_tokens_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"tokens file .*nope\.txt: No such file or directory"):
        load_tokens(str(tmp_path / "nope.txt"))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TokenFileError, match=r"bin\.txt: not UTF-8"):
        load_tokens(str(tmp_path / "bin.txt"))
    (tmp_path / "ok.txt").write_text("ann-0123456789abcdef ann\n")
    assert load_tokens(str(tmp_path / "ok.txt")).labeler("Bearer ann-0123456789abcdef") == "ann"


def test_the_tokens_file_is_read_again_when_it_changes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os

    from activestream.labeling.auth import TokenFile

    path = tmp_path / "tokens.txt"
    path.write_text("ann-0123456789abcdef ann\n")
    tokens = TokenFile(str(path))

    def rewrite(text: str) -> None:  # (a new mtime even within the filesystem's timestamp granularity)
        before = os.stat(path).st_mtime_ns
        path.write_text(text)
        os.utime(path, ns=(before + 10**9, before + 10**9))

    assert tokens.labeler("Bearer ann-0123456789abcdef") == "ann" and len(tokens) == 1
    rewrite("bob-0123456789abcdef bob\n")  # ann revoked, bob added: no restart
    assert tokens.labeler("Bearer ann-0123456789abcdef") is None and tokens.labeler("Bearer bob-0123456789abcdef") == "bob"
    rewrite("bob-0123456789abcdef bob\nhalf-written")  # a bad edit keeps what was read before
    assert tokens.labeler("Bearer bob-0123456789abcdef") == "bob" and "keeping the 1 token(s) read before" in caplog.text
    path.unlink()
    assert tokens.labeler("Bearer bob-0123456789abcdef") == "bob" and "No such file" in caplog.text
    with pytest.raises(TokenFileError):
        TokenFile(str(path))  # (at start the file must parse: the service stops naming the problem)


def test_a_tokens_file_replaced_with_one_of_the_same_size_and_mtime_is_read_again(tmp_path: Path) -> None:
    # An atomic replace (write a new file, rename it over: editors, config management,
    # Kubernetes' mounted secrets) of a token by another of the same length, within the
    # filesystem's timestamp granularity (1 s or 2 s on some), must still revoke the old one.
    import os

    from activestream.labeling.auth import TokenFile

    path = tmp_path / "tokens.txt"
    path.write_text("ann-0123456789abcdef ann\n")
    tokens = TokenFile(str(path))
    assert tokens.labeler("Bearer ann-0123456789abcdef") == "ann"
    new = tmp_path / "tokens.txt.new"
    new.write_text("bob-0123456789abcdef bob\n")
    st = os.stat(path)
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, path)
    assert tokens.labeler("Bearer ann-0123456789abcdef") is None and tokens.labeler("Bearer bob-0123456789abcdef") == "bob"


@pytest.mark.parametrize("labeler", ["auto", "baseline", "dispatch:default", "labelstudio:2"])
def test_a_tokens_file_cannot_give_a_reserved_labeler_id(labeler: str) -> None:
    with pytest.raises(TokenFileError, match=f"line 2: labeler id '{labeler}' is reserved"):
        parse_tokens(f"ann-0123456789abcdef ann\nx-0123456789abcdefgh {labeler}\n", "tokens.txt")


def test_failed_token_checks_are_limited_per_client_and_recover_at_the_rate() -> None:
    from activestream.labeling.auth import FailureLimiter

    now = [0.0]
    limiter = FailureLimiter(burst=3, per_second=0.5, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.wait("1.2.3.4") == 0
        limiter.failed("1.2.3.4")
    assert limiter.wait("1.2.3.4") == pytest.approx(2.0) and limiter.wait("5.6.7.8") == 0  # another client is not held up
    now[0] = 2.0
    assert limiter.wait("1.2.3.4") == 0  # one more check after 1 / per_second
    limiter.failed("1.2.3.4")
    assert limiter.wait("1.2.3.4") == pytest.approx(2.0)
    limiter.failed("a")
    limiter.failed("b")  # (max_clients 2: the least recently failing is forgotten)
    assert limiter.wait("1.2.3.4") == 0
