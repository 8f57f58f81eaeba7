"""Bad input to ``simulate`` / ``demo`` / ``produce``: one line naming the file or flag and the reason, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import make_classification

from activestream.cli import main

pytestmark = pytest.mark.integration


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single line a refused command printed to stderr."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    path = tmp_path / "good.csv"
    path.write_text("f0,f1,f2,f3,label\n" + "".join(",".join([*(f"{v:.5g}" for v in row), str(c)]) + "\n" for row, c in zip(X, y, strict=True)))
    return path


@pytest.mark.parametrize("command", ["demo", "simulate"])
def test_a_budget_below_init_names_both_flags(command: str, good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(good_csv), "--label-column", "label"] if command == "simulate" else []
    assert main([command, *data, "--budget", "10", "--report", str(tmp_path / "r.json")]) == 2
    assert one_error_line(capsys) == "error: --budget 10 is below --init 20"
