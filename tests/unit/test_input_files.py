"""Reading user files (``simulate``'s datasets, ``produce``'s items): bad files are named errors, good ones still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activestream.datasets import DatasetError, load


def iris_like(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of 3 features and a 0/1/2 class that follows them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)


def test_a_corrupt_npz_names_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"garbage\.npz: not an NPZ archive"):
        load(garbage, ["y"])
    X, y = iris_like()
    good = tmp_path / "good.npz"
    np.savez(good, X=X, y=y)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])  # a truncated download
    with pytest.raises(DatasetError, match=r"cut\.npz: cannot be read"):
        load(cut, ["y"])


@pytest.mark.parametrize("name", ["X", "y"])
def test_an_object_array_in_an_npz_names_the_file_and_the_array(tmp_path: Path, name: str) -> None:
    X, y = iris_like()
    arrays = {"X": X, "y": y}
    arrays[name] = arrays[name].astype(object)
    path = tmp_path / "obj.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=rf"obj\.npz: array '{name}': holds Python objects \(dtype object\), which are not read"):
        load(path, ["y"])
