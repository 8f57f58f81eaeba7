"""A real Label Studio for the connector's tests, started from its PyPI package in its own venv.

``deploy/label-studio/install.sh`` installs ``label-studio`` into
``~/.cache/activestream/label-studio-venv`` (``LABEL_STUDIO_VENV``), a no-op when the right
version is there; ``.ci/run`` calls it before the tests. The server runs on SQLite in a temp
directory with a user and a legacy API token created by its own start-up flags. Where it
cannot be installed or started the tests skip, or fail with ``ACTIVESTREAM_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from activestream.devstack.redis_server import free_port
from tests.availability import unavailable

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "deploy" / "label-studio" / "install.sh"
START_TIMEOUT = 240.0


@dataclass
class LabelStudioServer:
    """A running Label Studio: its URL, the admin's API token, and how to stop or restart it."""

    venv: Path
    data_dir: Path
    port: int
    token: str = field(default_factory=lambda: secrets.token_hex(20))
    email: str = "admin@activestream.test"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    proc: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0
    _log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LabelStudioServer:
        self._log = log = open(self.data_dir / "label-studio.log", "ab")  # noqa: SIM115 - closed by stop()
        env = {**os.environ, "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
               # (the connector's webhook receiver listens on the loopback, which Label Studio refuses by default)
               "USE_DEFAULT_BANNED_SUBNETS": "false"}
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "label-studio"), "start", "--no-browser", "--data-dir", str(self.data_dir / "data"),
             "--port", str(self.port), "--host", self.url, "--internal-host", "127.0.0.1",
             f"--username={self.email}", f"--password={self.password}", f"--user-token={self.token}", "--enable-legacy-api-token"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        while time.monotonic() - t0 < START_TIMEOUT:
            if self.proc.poll() is not None:
                raise RuntimeError(f"label-studio exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/projects/", timeout=2) as _:  # noqa: S310 - loopback
                    pass
            except urllib.error.HTTPError as exc:  # 401: up (the API wants the token)
                if exc.code in (401, 403):
                    break
            except OSError:
                time.sleep(0.5)
                continue
            else:
                break
        else:
            self.stop()
            raise RuntimeError(f"label-studio did not answer within {START_TIMEOUT:.0f} s: {self.tail()}")
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, n: int = 30) -> str:
        path = self.data_dir / "label-studio.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def install_label_studio() -> Path:
    """The venv holding Label Studio (installed by ``deploy/label-studio/install.sh`` when missing)."""
    out = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{INSTALL.name} failed: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LabelStudioServer]:
    """A Label Studio server for the session (SQLite in a temp dir), with an admin and its API token.

    ``ACTIVESTREAM_TEST_LABEL_STUDIO='<url> <token> <email>'`` uses a server already running instead.
    """
    given = os.environ.get("ACTIVESTREAM_TEST_LABEL_STUDIO")
    if given:
        url, token, email = given.split()
        yield LabelStudioServer(Path("."), Path("."), int(url.rsplit(":", 1)[1]), token=token, email=email)
        return
    try:
        venv = install_label_studio()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        unavailable(f"Label Studio could not be installed: {exc}")
    # A fresh data dir spends ~1 min in Django migrations: the first session keeps its migrated
    # data dir beside the venv as a template, and later sessions start from a copy (~10 s).
    template = venv.parent / f"{venv.name}-data-template"
    with tempfile.TemporaryDirectory(prefix="activestream-ls-") as tmp:
        server = LabelStudioServer(venv, Path(tmp), free_port())
        if (template / ".complete").exists():  # (its admin already exists: Label Studio keeps that user's token)
            shutil.copytree(template, server.data_dir / "data")
            creds = json.loads((template / ".complete").read_text())
            server.token, server.password = creds["token"], creds["password"]
        try:
            server.start()
        except RuntimeError as exc:
            unavailable(f"Label Studio did not start: {exc}")
        print(f"Label Studio at {server.url} (started in {server.startup_seconds:.1f} s)")
        try:
            yield server
        finally:
            server.stop()
            if not (template / ".complete").exists():
                shutil.rmtree(template, ignore_errors=True)
                shutil.copytree(server.data_dir / "data", template)
                (template / ".complete").write_text(json.dumps({"token": server.token, "password": server.password}))
