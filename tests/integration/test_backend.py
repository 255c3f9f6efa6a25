"""The storage backends of remotes, against real servers (moto S3, fake-gcs-server), a real folder and memory.

No mocks: every request here crosses a socket (or the file system). A small TCP proxy stands in for a
flaky network where a test needs one (a request that lands while its answer is lost).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dvx.errors import RemoteError, UsageError
from dvx.remote import local as local_backend
from dvx.remote.backend import (
    Backend,
    RemoteNotFound,
    RemoteUnavailable,
    open_backend,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kind_of(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


# -- round trips -------------------------------------------------------------------------------------------


def test_round_trip(remote_url: str) -> None:
    b = open_backend(remote_url)
    assert b.list("") == []
    assert b.list("objects") == []

    b.write("objects/pack/p1.pack", b"0123456789")
    b.write("refs/heads/main", b"commit-1")
    assert b.read("objects/pack/p1.pack") == b"0123456789"
    assert b.read_range("objects/pack/p1.pack", 2, 5) == b"234"
    assert b.read_range("objects/pack/p1.pack", 8, 20) == b"89"  # short at the end of the object
    assert b.read_range("objects/pack/p1.pack", 4, 4) == b""
    assert b.size("objects/pack/p1.pack") == 10
    assert b.exists("objects/pack/p1.pack")
    assert not b.exists("objects/pack/p2.pack")

    items = {f"objects/loose/{i:02x}": bytes([i]) * (i + 1) for i in range(20)}
    b.write_many(items)
    got = b.read_many(list(items) + ["objects/loose/00"])  # a duplicate is fine
    assert got == items

    assert b.list("objects/loose") == sorted(items)
    assert b.list("objects/loose/") == sorted(items)
    assert b.list("objects") == sorted([*items, "objects/pack/p1.pack"])
    assert b.list("") == sorted([*items, "objects/pack/p1.pack", "refs/heads/main"])
    assert b.list("objects/lo") == []  # a prefix is a folder, not a string prefix
    assert b.list("nothing/here") == []

    b.write("refs/heads/main", b"commit-2")  # unconditional overwrite
    assert b.read("refs/heads/main") == b"commit-2"

    b.delete("objects/pack/p1.pack")
    b.delete("objects/pack/p1.pack")  # absent is fine
    assert not b.exists("objects/pack/p1.pack")
    assert b.list("objects/pack") == []

    # Another backend object on the same URL sees the same data (memory:// included).
    assert open_backend(remote_url).read("refs/heads/main") == b"commit-2"


def test_empty_and_binary_objects(remote_url: str) -> None:
    b = open_backend(remote_url)
    blob = bytes(range(256)) * 64 + b"\r\n--==0==\r\n"  # includes a multipart-looking boundary
    b.write("a/empty", b"")
    b.write("a/blob", blob)
    assert b.read("a/empty") == b""
    assert b.size("a/empty") == 0
    assert b.read("a/blob") == blob
    assert b.read_range("a/blob", 1000, 1010) == blob[1000:1010]
    assert b.compare_and_swap("a/ref", None, blob)
    ref = b.read_ref("a/ref")
    assert ref is not None and ref[0] == blob


def test_missing_keys(remote_url: str) -> None:
    b = open_backend(remote_url)
    b.write("present", b"x")
    with pytest.raises(RemoteNotFound, match="absent"):
        b.read("absent")
    with pytest.raises(RemoteNotFound, match="absent"):
        b.size("absent")
    with pytest.raises(RemoteNotFound, match="missing/one"):
        b.read_many(["present", "missing/one"])
    with pytest.raises(RemoteError):
        b.read_range("absent", 0, 10)
    with pytest.raises(RemoteError, match="beyond the end"):
        b.read_range("present", 5, 10)
    assert b.read_ref("absent") is None
    assert not b.exists("absent")
    b.delete("absent")
    assert b.read_many([]) == {}


def test_upload_file(remote_url: str, tmp_path: Path) -> None:
    b = open_backend(remote_url)
    src = tmp_path / "big.bin"
    data = os.urandom(1 << 16) * 144  # 9 MiB: GCS uploads switch to resumable from 8 MiB
    src.write_bytes(data)
    b.upload_file("objects/pack/big.pack", str(src))
    assert b.size("objects/pack/big.pack") == len(data)
    assert b.read_range("objects/pack/big.pack", len(data) - 100, len(data)) == data[-100:]
    assert b.read("objects/pack/big.pack") == data
    b.write("objects/pack/big2.pack", data)  # the same size through write()
    assert b.read_range("objects/pack/big2.pack", 1 << 20, (1 << 20) + 10) == data[1 << 20 : (1 << 20) + 10]
    assert b.size("objects/pack/big2.pack") == len(data)
    with pytest.raises(RemoteError, match="not a readable file|No such file|not found"):
        b.upload_file("objects/pack/none.pack", str(tmp_path / "does-not-exist"))


def test_write_if_absent(remote_url: str) -> None:
    b = open_backend(remote_url)
    assert b.write_if_absent("objects/ab/cdef", b"content") is True
    assert b.write_if_absent("objects/ab/cdef", b"content") is False
    assert b.write_if_absent("objects/ab/cdef", b"other") is False  # never replaced
    assert b.read("objects/ab/cdef") == b"content"


def test_compare_and_swap(remote_url: str) -> None:
    b = open_backend(remote_url)
    assert b.read_ref("refs/heads/main") is None
    assert b.compare_and_swap("refs/heads/main", None, b"c1") is True
    ref1 = b.read_ref("refs/heads/main")
    assert ref1 is not None and ref1[0] == b"c1"

    assert b.compare_and_swap("refs/heads/main", None, b"c-other") is False  # exists already
    assert b.compare_and_swap("refs/heads/main", ref1[1], b"c2") is True
    ref2 = b.read_ref("refs/heads/main")
    assert ref2 is not None and ref2[0] == b"c2" and ref2[1] != ref1[1]

    assert b.compare_and_swap("refs/heads/main", ref1[1], b"c-stale") is False  # stale token
    assert b.read("refs/heads/main") == b"c2"

    b.delete("refs/heads/main")
    assert b.compare_and_swap("refs/heads/main", ref2[1], b"c3") is False  # token of a deleted key
    assert b.compare_and_swap("refs/heads/main", None, b"c3") is True
    assert b.read("refs/heads/main") == b"c3"


def test_check_passes(remote_url: str) -> None:
    b = open_backend(remote_url)
    b.check()
    assert b.list("") == []  # the probe object is gone


def test_request_count(remote_url: str) -> None:
    b = open_backend(remote_url)
    assert b.request_count == 0
    b.write("k1", b"1")
    after_write = b.request_count
    assert after_write >= 1
    b.read("k1")
    assert b.request_count >= after_write + 1
    before = b.request_count
    b.write_many({f"m/{i}": b"x" for i in range(6)})
    assert b.request_count >= before + 6
    before = b.request_count
    b.read_many([f"m/{i}" for i in range(6)])
    assert b.request_count >= before + 6
    before = b.request_count
    b.list("m")
    b.exists("m/0")
    assert b.request_count >= before + 2
    if kind_of(remote_url) in ("memory", "s3", "gs"):
        # One request per object: no hidden HEAD before each GET, no listing behind an exists().
        before = b.request_count
        b.read_many([f"m/{i}" for i in range(6)])
        assert b.request_count - before == 6


# -- concurrency -------------------------------------------------------------------------------------------

_COUNTER_WORKER = r"""
import random
import sys
import time
from dvx.remote.backend import open_backend

url, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = open_backend(url)
done = attempts = 0
while done < n:
    attempts += 1
    ref = b.read_ref("counter")
    value, token = (0, None) if ref is None else (int(ref[0].split()[0]), ref[1])
    # The tag makes every value unique, so no writer can mistake another's write for its own.
    if b.compare_and_swap("counter", token, f"{value + 1} {tag}-{done}".encode()):
        done += 1
    else:
        time.sleep(random.random() * 0.02)  # lost the race: back off a little, as real writers do
print(attempts)
"""


def test_concurrent_compare_and_swap_loses_no_update(shared_remote_url: str) -> None:
    procs, n = 4, 10
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _COUNTER_WORKER, shared_remote_url, str(n), f"w{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(procs)
    ]
    attempts = 0
    for w in workers:
        out, err = w.communicate(timeout=90)
        assert w.returncode == 0, err.decode(errors="replace")
        attempts += int(out.split()[-1])
    ref = open_backend(shared_remote_url).read_ref("counter")
    assert ref is not None
    assert int(ref[0].split()[0]) == procs * n
    assert attempts >= procs * n


def test_local_cas_threads(tmp_path: Path) -> None:
    b = open_backend(str(tmp_path / "remote"))
    n, threads = 25, 4

    def work(tag: int) -> None:
        done = 0
        while done < n:
            ref = b.read_ref("counter")
            value, token = (0, None) if ref is None else (int(ref[0].split()[0]), ref[1])
            if b.compare_and_swap("counter", token, f"{value + 1} {tag}-{done}".encode()):
                done += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert b.read("counter").split()[0] == str(n * threads).encode()
    assert b.list("") == ["counter"]  # no lock or temp file left behind


# -- the local backend: locks, layout, URLs ------------------------------------------------------------------


def test_local_stale_lock_is_broken(tmp_path: Path) -> None:
    b = open_backend(str(tmp_path / "r"))
    assert b.compare_and_swap("refs/heads/main", None, b"c1")
    lock = tmp_path / "r" / "refs" / "heads" / "main.lock"
    lock.write_text("12345 crashed-host\n")
    old = time.time() - local_backend.STALE_LOCK_SECONDS - 5
    os.utime(lock, (old, old))
    ref = b.read_ref("refs/heads/main")
    assert ref is not None
    assert b.compare_and_swap("refs/heads/main", ref[1], b"c2")
    assert b.read("refs/heads/main") == b"c2"
    assert not lock.exists()
    assert sorted(p.name for p in lock.parent.iterdir()) == ["main"]


def test_a_fresh_lock_of_a_dead_process_of_this_host_is_broken_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push killed in its ref swap left the lock: its pid is gone on this host, so the next writer breaks it
    at once instead of waiting out the age limit (it used to wait 60 s, saying nothing). A fresh lock of a live
    process, or of another host, is still waited for."""
    monkeypatch.setattr(local_backend, "LOCK_WAIT_SECONDS", 0.3)
    b = open_backend(str(tmp_path / "r"))
    assert b.compare_and_swap("refs/heads/main", None, b"c1")
    lock = tmp_path / "r" / "refs" / "heads" / "main.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid} {socket.gethostname()}\n")
    ref = b.read_ref("refs/heads/main")
    assert ref is not None
    assert b.compare_and_swap("refs/heads/main", ref[1], b"c2")  # within LOCK_WAIT_SECONDS = 0.3
    assert not lock.exists()
    for holder in (f"{os.getppid()} {socket.gethostname()}", f"{dead.pid} another-host"):
        lock.write_text(holder + "\n")
        ref = b.read_ref("refs/heads/main")
        assert ref is not None
        with pytest.raises(RemoteUnavailable, match="main.lock"):
            b.compare_and_swap("refs/heads/main", ref[1], b"c3")
        lock.unlink()


def test_local_live_lock_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_backend, "LOCK_WAIT_SECONDS", 0.3)
    b = open_backend(str(tmp_path / "r"))
    assert b.compare_and_swap("refs/heads/main", None, b"c1")
    lock = tmp_path / "r" / "refs" / "heads" / "main.lock"
    lock.write_text("1 other\n")  # fresh: held by a live writer
    ref = b.read_ref("refs/heads/main")
    assert ref is not None
    with pytest.raises(RemoteUnavailable, match="main.lock"):
        b.compare_and_swap("refs/heads/main", ref[1], b"c2")
    assert lock.exists()  # somebody else's: left alone
    assert b.read("refs/heads/main") == b"c1"
    assert b.list("refs") == ["refs/heads/main"]  # lock files are not keys


def test_local_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "remote"
    a = open_backend(str(target) + "/")
    b = open_backend(f"file://{target}")
    monkeypatch.chdir(tmp_path)
    c = open_backend("remote")
    assert a.url == b.url == c.url == str(target)
    assert not target.exists()  # opening does no I/O; the root appears on first write
    a.write("k", b"v")
    assert b.read("k") == b"v" and c.read("k") == b"v"
    assert (target / "k").read_bytes() == b"v"
    with pytest.raises(RemoteError, match="absolute path"):
        open_backend("file://relative/path")


def test_local_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    b = open_backend(str(tmp_path / "afile"))
    with pytest.raises(RemoteError):
        b.write("k", b"v")
    with pytest.raises(RemoteError, match="cannot reach"):
        b.check()


# -- URLs, keys and options ------------------------------------------------------------------------------------


def test_unknown_scheme() -> None:
    with pytest.raises(RemoteError) as info:
        open_backend("ftp://host/path")
    assert str(info.value) == (
        "unsupported remote URL scheme 'ftp' (use a local path, file://, s3://, gs:// or memory://)"
    )


def test_url_normalization() -> None:
    assert open_backend("s3://bkt/a/b/").url == "s3://bkt/a/b"
    assert open_backend("s3://bkt").url == "s3://bkt"
    assert open_backend("gcs://bkt/p").url == "gs://bkt/p"
    assert open_backend("memory://x/y/").url == "memory://x/y"
    for bad in ("s3://", "gs:///p", "memory://", "s3://bkt/a/../b"):
        with pytest.raises(RemoteError):
            open_backend(bad)


BAD_KEYS = ["", "/abs", "a//b", "trailing/", "../up", "a/../../b", "a/./b", ".", "a\\b", "a\x00b"]


def test_invalid_keys_are_refused(remote_url: str) -> None:
    b = open_backend(remote_url)
    for key in BAD_KEYS:
        calls: list[tuple[Callable[..., object], tuple[object, ...]]] = [
            (b.write, (key, b"x")),
            (b.read, (key,)),
            (b.compare_and_swap, (key, None, b"x")),
            (b.read_many, (["ok", key],)),
            (b.write_many, ({key: b"x"},)),
        ]
        for fn, args in calls:
            with pytest.raises(RemoteError, match="invalid remote key"):
                fn(*args)
    with pytest.raises(RemoteError, match="invalid remote key"):
        b.list("../elsewhere")
    assert b.list("") == []


def test_options() -> None:
    assert open_backend("s3://bkt/p", {"connections": "3"}).connections == 3
    assert open_backend("memory://o/p").connections == 8
    for bad in ("0", "many", "1000"):
        with pytest.raises(UsageError, match="connections"):
            open_backend("s3://bkt/p", {"connections": bad})
    with pytest.raises(UsageError, match="unknown option 'endpoint'"):
        open_backend("s3://bkt/p", {"endpoint": "http://x"})
    with pytest.raises(UsageError, match="credential"):
        open_backend("s3://bkt/p", {"secret": "hunter2"})
    with pytest.raises(UsageError, match="anon"):
        open_backend("s3://bkt/p", {"anon": "perhaps"})
    with pytest.raises(UsageError, match="does not apply"):
        open_backend("/tmp/x", {"anon": "true"})
    s3 = open_backend("s3://bkt/p", {"anon": "true", "endpoint_url": "http://127.0.0.1:9"})
    assert s3.options == {"anon": True, "endpoint_url": "http://127.0.0.1:9"}  # type: ignore[attr-defined]


# -- unreachable and missing stores ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_check_unreachable_endpoint_fails_fast(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    options = {"endpoint_url": f"http://127.0.0.1:{port}"}
    if kind == "gs":
        options["token"] = "anon"
    else:  # credentials of its own: without any, the check stops at "no AWS credentials" before connecting
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    b = open_backend(f"{kind}://bkt/prefix", options)
    start = time.monotonic()
    with pytest.raises(RemoteUnavailable) as info:
        b.check()
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert message.startswith(f"cannot reach {kind}://bkt/prefix: ")
    assert "\n" not in message and f"127.0.0.1:{port}" in message


def test_check_missing_bucket(s3_server: str, gcs_server: str) -> None:
    for url in ("s3://no-such-bucket-dvx/p", "gs://no-such-bucket-dvx/p"):
        with pytest.raises(RemoteNotFound, match="bucket 'no-such-bucket-dvx' does not exist"):
            open_backend(url).check()


def test_s3_without_credentials(
    make_remote_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_remote_url("s3")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    b = open_backend(url)
    with pytest.raises(RemoteError, match="no AWS credentials"):
        b.read("k")


# -- a request that lands while its answer is lost -------------------------------------------------------------


class DroppingProxy:
    """A TCP proxy that can swallow the answers of the next N requests (the requests still reach the server)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.drop = 0
        self.dropped = 0
        self.sent = bytearray()  # everything clients sent, for assertions on requests
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            with self.lock:
                self.socks += [client, up]
            threading.Thread(target=self._pump, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                with self.lock:
                    if from_client:
                        self.sent += chunk
                    elif self.drop > 0:
                        # The server answered; the client never hears it.
                        self.drop -= 1
                        self.dropped += 1
                        break
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.server.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


@pytest.fixture(params=["s3", "gs"])
def proxied_backend(
    request: pytest.FixtureRequest, make_remote_url: Callable[[str], str]
) -> Iterator[tuple[Backend, DroppingProxy]]:
    kind = request.param
    url = make_remote_url(kind)
    server = request.getfixturevalue("s3_server" if kind == "s3" else "gcs_server")
    parts = urlsplit(server)
    proxy = DroppingProxy((parts.hostname or "127.0.0.1", parts.port or 80))
    options = {"endpoint_url": f"http://127.0.0.1:{proxy.port}"}
    if kind == "gs":
        options["token"] = "anon"
    try:
        yield open_backend(url, options), proxy
    finally:
        proxy.close()


def test_cas_whose_answer_is_lost_still_reports_success(
    proxied_backend: tuple[Backend, DroppingProxy],
) -> None:
    b, proxy = proxied_backend
    assert b.compare_and_swap("refs/heads/main", None, b"c1")
    ref = b.read_ref("refs/heads/main")
    assert ref is not None
    proxy.drop = 1  # the swap lands, its "200 OK" is lost; the retry then meets "precondition failed"
    assert b.compare_and_swap("refs/heads/main", ref[1], b"c2") is True
    assert proxy.dropped == 1
    assert b.read("refs/heads/main") == b"c2"

    # A swap that really lost stays lost, even after a lost answer: the read-back sees someone else's value.
    ref2 = b.read_ref("refs/heads/main")
    assert ref2 is not None
    b.write("refs/heads/main", b"someone-else")
    proxy.drop = 1
    assert b.compare_and_swap("refs/heads/main", ref2[1], b"c3") is False
    assert b.read("refs/heads/main") == b"someone-else"


def test_read_range_is_a_range_request(proxied_backend: tuple[Backend, DroppingProxy]) -> None:
    b, proxy = proxied_backend
    b.write("pack", bytes(1000))
    before = len(proxy.sent)
    assert b.read_range("pack", 100, 300) == bytes(200)
    assert b"range: bytes=100-299" in bytes(proxy.sent[before:]).lower()
