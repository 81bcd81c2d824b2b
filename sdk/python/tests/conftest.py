"""Runs the real latchkey binary for the tests: fresh SQLite database, a partner
key, a catalog granting `learner-activity` a few endpoints, a port picked by the OS."""

import contextlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
GRANTED = "course.v1.CourseService/GetOutline"
# For the guard tests (test_guard.py): a server-streaming method and, as the
# ASGI middleware names HTTP requests, the GETs under /outline.
GRANTED_STREAM = "course.v1.CourseService/WatchOutline"
GRANTED_HTTP = "http/GET/outline*"
CATALOG = f"""
[[integrations]]
name = "learner-activity"
kind = "custom"
description = "Python SDK tests"
endpoints = ["{GRANTED}", "{GRANTED_STREAM}", "{GRANTED_HTTP}"]
"""


def latchkey_bin() -> Path:
    if os.environ.get("LATCHKEY_BIN"):
        path = Path(os.environ["LATCHKEY_BIN"])
    elif os.environ.get("CARGO_TARGET_DIR"):
        path = Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "latchkey"
    else:
        path = REPO / "target" / "debug" / "latchkey"
    if not os.access(path, os.X_OK):
        pytest.fail(f"latchkey binary not found at {path}: build it (cargo build) or set LATCHKEY_BIN")
    return path


class Server:
    def __init__(self, addr: str, partner_key: str):
        self.addr = addr
        self.partner_key = partner_key


@contextlib.contextmanager
def running_server(tmp: Path, args=(), env=None):
    """A latchkey server on a fresh SQLite database in `tmp`, with its own
    partner key, serving until the block ends (then SIGTERM, exit 0)."""
    binary = latchkey_bin()
    # Only our settings: none inherited from the caller's LATCHKEY_* environment.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    environ.update(LATCHKEY_DATABASE_URL=f"sqlite://{tmp}/t.db?mode=rwc",
                   # Cheap argon2: the tests check behaviour, not hashing cost.
                   LATCHKEY_ARGON2_MEMORY_KIB="256", LATCHKEY_ARGON2_ITERATIONS="1")
    environ.update(env or {})
    partner_key = subprocess.run([binary, "partner-keys", "create", "--name", "test"], env=environ,
                                 check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    (tmp / "catalog.toml").write_text(CATALOG)
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--catalog", tmp / "catalog.toml", "--log-format", "json",
         *args],
        env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    # A thread drains stderr for the whole run (a full pipe would block the
    # server) and reports the bound address from the "latchkey serving" line.
    found, log, addr = threading.Event(), [], []

    def read_stderr():
        for line in proc.stderr:
            log.append(line)
            if not addr and "latchkey serving" in line:
                addr.append(json.loads(line)["fields"]["addr"])
                found.set()
        found.set()  # EOF: the server exited

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        if not found.wait(timeout=60) or not addr:
            pytest.fail("latchkey did not start:\n" + "".join(log))
        yield Server(addr[0], partner_key)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, f"latchkey exited {code} on SIGTERM:\n" + "".join(log[-20:])


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("latchkey")) as running:
        yield running
