"""Storage backends for remotes: one small interface over a local folder, S3, GCS and an in-process store.

A remote is a flat namespace of ``/``-separated keys (``objects/pack/ab12.pack``, ``refs/heads/main``) under
a root URL. :func:`open_backend` turns a URL into a :class:`Backend`; everything above this module (push,
fetch, clone) talks only to that interface.

Guarantees every backend gives:

- ``write`` and ``upload_file`` are atomic: a reader sees the old object, or the whole new one, never a part.
- ``compare_and_swap`` is a true compare-and-swap against the store (S3 ``If-Match``/``If-None-Match``, GCS
  ``ifGenerationMatch``, a lock file on a local folder), so concurrent writers never lose an update.
- Every failure is a :class:`~dvx.errors.RemoteError` (mostly a :class:`BackendError` subclass below) whose
  text is one line naming the URL or key; network and credential problems never escape as tracebacks.

The S3 and GCS client libraries are imported only when such a URL is opened (CLI start-up time matters).
"""

from __future__ import annotations

import abc
import functools
import hashlib
import os
import random
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from ..errors import RemoteError, UsageError

__all__ = [
    "Backend",
    "BackendError",
    "RemoteError",
    "RemoteNotFound",
    "RemoteUnavailable",
    "RemoteAccessDenied",
    "RemoteUnsupported",
    "open_backend",
    "absolute_url",
    "validate_key",
    "DEFAULT_CONNECTIONS",
    "CHECK_TIMEOUT",
]

T = TypeVar("T")

#: Default parallelism of ``read_many``/``write_many`` (the ``connections`` option overrides it).
DEFAULT_CONNECTIONS = 8
#: ``check()`` gives up after this long, whatever the client library's own retry policy would do.
CHECK_TIMEOUT = 20.0
#: Attempts of one conditional write before giving up on transient errors (throttling, 5xx, resets).
CAS_ATTEMPTS = 5

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class BackendError(RemoteError):
    """A storage request failed. ``str`` names the operation and key; ``reason`` is the cause alone."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message


class RemoteNotFound(BackendError):
    """The key (or the bucket holding it) does not exist."""


class RemoteUnavailable(BackendError):
    """The store could not be reached or did not answer in time (network, timeouts, throttling, 5xx)."""


class RemoteAccessDenied(BackendError):
    """Missing or rejected credentials, or no permission for the request."""


class RemoteUnsupported(BackendError):
    """The store lacks something dvx needs, e.g. it ignores conditional writes (no compare-and-swap)."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a clean relative ``/``-separated key, else raise :class:`RemoteError`.

    Rejects empty keys, absolute keys, empty, ``.`` or ``..`` components, backslashes and NUL, so a key can
    never leave the backend root (this matters for the local backend, where keys become paths).
    """
    if not isinstance(key, str) or not key:
        raise RemoteError(f"invalid remote key {key!r}: empty")
    if "\x00" in key or "\\" in key:
        raise RemoteError(f"invalid remote key {key!r}: contains NUL or backslash")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise RemoteError(f"invalid remote key {key!r}: empty, '.' or '..' component")
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key`, but ``""`` (the whole root) is allowed and a trailing ``/`` is dropped."""
    prefix = prefix.rstrip("/") if isinstance(prefix, str) else prefix
    return "" if prefix == "" else validate_key(prefix)


def content_token(data: bytes) -> str:
    """The version token of backends that have no server-side version: a hash of the content.

    Equal content gives equal tokens; for refs that is the right notion of "unchanged" (a ref moved away
    and back holds the same commit).
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Backend(abc.ABC):
    """One remote storage location: keys map to immutable-or-CAS-updated byte strings.

    Thread-safe: methods may be called from several threads at once.

    ``request_count`` counts storage requests actually sent: for S3 and GCS every HTTP request, the client
    libraries' transparent retries included; for a local folder or memory one per object read, written,
    listed, looked up or deleted (a compare-and-swap counts its read and its write).
    """

    url: str
    request_count: int

    def __init__(self, url: str, connections: int = DEFAULT_CONNECTIONS) -> None:
        self.url = url.rstrip("/") if url not in ("/",) else url
        self.connections = connections
        self.request_count = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def _count(self, n: int = 1) -> None:
        with self._count_lock:
            self.request_count += n

    def _where(self, key: str) -> str:
        return f"{self.url}/{key}" if key else self.url

    # -- reading --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def read(self, key: str) -> bytes:
        """The whole object; :class:`RemoteNotFound` if absent."""

    @abc.abstractmethod
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object, fetched with one byte-range request.

        Shorter than ``end - start`` if the object ends first; ``b""`` if ``end <= start``;
        :class:`RemoteError` if ``start`` is at or past the end of a non-empty range request.
        """

    @abc.abstractmethod
    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        """Every key's content, fetched in parallel (``connections`` at a time).

        Raises :class:`RemoteNotFound` naming the first missing key (in ``keys`` order) if any is absent.
        """

    @abc.abstractmethod
    def read_ref(self, key: str) -> tuple[bytes, str] | None:
        """Current content and an opaque version token for :meth:`compare_and_swap`, or None if absent.

        Content and token come from one consistent read (never the content of one version with the token
        of another).
        """

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Sorted keys under the directory ``prefix`` ("" = everything), recursively; ``[]`` if none.

        In-progress temp files and lock files of the local backend are not listed.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; :class:`RemoteNotFound` if absent."""

    # -- writing --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Unconditionally store ``data`` under ``key``, atomically (for immutable, content-addressed data)."""

    @abc.abstractmethod
    def write_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if absent: True if this call created it, False if it existed.

        Meant for content-addressed objects, where "already there" is success. After a transparently
        retried request the store may answer "exists" for an object this very call created (False).
        """

    @abc.abstractmethod
    def write_many(self, items: dict[str, bytes]) -> None:
        """``write`` every item, in parallel (``connections`` at a time); raises the first failure."""

    @abc.abstractmethod
    def upload_file(self, key: str, local_path: str) -> None:
        """Store the file at ``local_path`` under ``key``: streamed (multipart where supported), atomic."""

    @abc.abstractmethod
    def compare_and_swap(self, key: str, expected_token: str | None, data: bytes) -> bool:
        """Replace ``key`` with ``data`` only if its version token is still ``expected_token``.

        ``expected_token`` None means "only if ``key`` does not exist". Returns True if the swap happened,
        False if the precondition failed (someone else moved the key). Raises :class:`RemoteError` if the
        store could not be asked.

        When a request's fate is unknown (timeout, connection reset, 5xx) and a retry then finds the
        precondition failed, the key is read back: if it holds exactly ``data``, the earlier attempt
        landed and this returns True. Writers whose values could collide with another writer's should
        make them unique if they must tell "mine" from "equal to mine" (dvx refs need not: equal means
        the same commit).
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; an absent key is not an error."""

    def sweep_temps(self, max_age: float) -> int:
        """Remove what writes of killed processes left, older than ``max_age`` seconds, in the places this
        backend wrote to; returns how many. Object stores publish uploads atomically and leave nothing: no-op."""
        return 0

    # -- probing --------------------------------------------------------------------------------------
    def check(self) -> None:
        """Probe that the remote is reachable, writable, readable and honours compare-and-swap.

        Writes, swaps, reads and deletes one probe object at the root. Raises :class:`RemoteError` with one
        line ("cannot reach s3://bkt/x: ...") otherwise; gives up after :data:`CHECK_TIMEOUT` seconds.
        """
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                self._probe()
            except BaseException as exc:  # handed over to the calling thread below
                outcome.append(exc)
            else:
                outcome.append(None)

        worker = threading.Thread(target=run, name="dvx-remote-check", daemon=True)
        worker.start()
        # A thread with a deadline, not the libraries' timeouts alone: their retry policies (and credential
        # discovery) can add up to minutes, and `dvx remote add` must answer promptly.
        worker.join(CHECK_TIMEOUT)
        if worker.is_alive():
            raise RemoteUnavailable(
                f"cannot reach {self.url}: no answer within {CHECK_TIMEOUT:.0f} s", "no answer in time"
            )
        exc = outcome[0]
        if exc is None:
            return
        if isinstance(exc, RemoteUnsupported):
            raise exc
        if isinstance(exc, BackendError):
            raise type(exc)(f"cannot reach {self.url}: {exc.reason}", exc.reason) from exc
        if isinstance(exc, RemoteError):
            raise RemoteError(f"cannot reach {self.url}: {exc.message}") from exc
        raise exc

    def _probe(self) -> None:
        key = f".dvx-check-{uuid.uuid4().hex}"
        unsupported = (
            f"{self.url} does not honour conditional writes, which dvx needs to update branches safely"
        )
        if not self.compare_and_swap(key, None, b"dvx check 1"):
            raise RemoteError(f"create-only write of a fresh probe object {key} was refused")
        try:
            ref = self.read_ref(key)
            if ref is None or ref[0] != b"dvx check 1":
                raise RemoteError(f"wrote probe object {key} but could not read it back")
            if self.compare_and_swap(key, None, b"dvx check x"):
                raise RemoteUnsupported(
                    f"{unsupported} (a create-only write replaced an existing object)",
                    "create-only writes replace existing objects (no If-None-Match support)",
                )
            if not self.compare_and_swap(key, ref[1], b"dvx check 2"):
                raise RemoteError(
                    f"conditional write of probe object {key} with its current version was refused"
                )
            if self.compare_and_swap(key, ref[1], b"dvx check 3"):
                raise RemoteUnsupported(
                    f"{unsupported} (a write with a stale version was accepted)",
                    "writes with a stale version are accepted (no If-Match support)",
                )
            if self.read(key) != b"dvx check 2":
                raise RemoteError(f"probe object {key} does not hold what was written")
        finally:
            # Only once the probe object exists: after a failed first write, a delete would just wait
            # through the library's retries against an unreachable store.
            try:
                self.delete(key)
            except RemoteError:
                pass  # best effort: the first error is the one to report


# -- shared helpers for the fsspec async backends (S3, GCS) ---------------------------------------------


class CasOutcome:
    """Result of one conditional-write request (see :meth:`AsyncBackend._cas_once`)."""

    OK = "ok"  # the write landed
    REFUSED = "refused"  # the store answered: precondition failed
    RETRY = "retry"  # the store refused for a transient reason (throttled, conflict): not written
    UNKNOWN = "unknown"  # no answer (timeout, reset, 5xx): the write may or may not have landed


class AsyncBackend(Backend):
    """Shared machinery of backends built on an fsspec async filesystem (s3fs, gcsfs).

    Public methods run coroutines on fsspec's I/O loop; ``*_many`` run up to ``connections`` requests at
    once. Subclasses provide the filesystem, per-store requests and the translation of their exceptions.
    """

    def __init__(self, url: str, root: str, connections: int, options: dict[str, Any]) -> None:
        super().__init__(url, connections)
        self.root = root.strip("/")  # "bucket" or "bucket/prefix", as the fsspec filesystem names paths
        self.options = options
        self._fs_lock = threading.Lock()
        self._fs_obj: Any = None

    # -- subclass hooks -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _make_fs(self) -> Any:
        """Construct the fsspec filesystem (called once, lazily, under a lock)."""

    @abc.abstractmethod
    def _translate(self, exc: BaseException, what: str) -> RemoteError:
        """Turn any exception met while doing ``what`` into a one-line :class:`RemoteError`."""

    @abc.abstractmethod
    async def _ready(self) -> None:
        """Make sure the client is connected (and its request counter attached)."""

    @abc.abstractmethod
    async def _aread(self, key: str, start: int | None = None, end: int | None = None) -> bytes: ...

    @abc.abstractmethod
    async def _aread_ref(self, key: str) -> tuple[bytes, str] | None: ...

    @abc.abstractmethod
    async def _cas_once(
        self, key: str, expected_token: str | None, data: bytes
    ) -> tuple[str, BaseException | None]:
        """One conditional write, sent once (no transparent retries): a :class:`CasOutcome` and the error."""

    @abc.abstractmethod
    async def _alist(self, prefix: str) -> list[str]: ...

    @abc.abstractmethod
    async def _astat(self, key: str) -> int | None:
        """Size of ``key``, or None if absent."""

    @abc.abstractmethod
    async def _adelete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def _awrite(self, key: str, data: bytes, create_only: bool = False) -> bool: ...

    @abc.abstractmethod
    async def _aupload(self, key: str, local_path: str) -> None: ...

    # -- plumbing -------------------------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem, created on first use (credential discovery can be slow)."""
        if self._fs_obj is None:
            with self._fs_lock:
                if self._fs_obj is None:
                    self._fs_obj = self._make_fs()
        return self._fs_obj

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _run(self, what: str, coro_fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        from fsspec.asyn import sync

        try:
            fs = self.fs
            result: T = sync(fs.loop, coro_fn, *args)
            return result
        except RemoteError:
            raise
        except Exception as exc:
            raise self._translate(exc, what) from exc

    async def _gather(self, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T | BaseException]:
        import asyncio

        sem = asyncio.Semaphore(max(1, self.connections))

        async def one(job: Callable[[], Awaitable[T]]) -> T | BaseException:
            async with sem:
                try:
                    return await job()
                except Exception as exc:
                    return exc

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    # -- Backend --------------------------------------------------------------------------------------
    def read(self, key: str) -> bytes:
        validate_key(key)
        return self._run(f"cannot read {self._where(key)}", self._aread, key)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        validate_key(key)
        if start < 0 or end < 0:
            raise RemoteError(f"cannot read {self._where(key)}: negative range [{start}, {end})")
        if end <= start:
            return b""
        return self._run(
            f"cannot read bytes [{start}, {end}) of {self._where(key)}", self._aread, key, start, end
        )

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        unique = list(dict.fromkeys(validate_key(k) for k in keys))
        if not unique:
            return {}

        async def go() -> list[bytes | BaseException]:
            await self._ready()
            return await self._gather([functools.partial(self._aread, k) for k in unique])

        results = self._run(f"cannot read from {self.url}", go)
        out: dict[str, bytes] = {}
        for key, res in zip(unique, results):
            if isinstance(res, BaseException):
                raise self._translate(res, f"cannot read {self._where(key)}") from res
            out[key] = res
        return out

    def read_ref(self, key: str) -> tuple[bytes, str] | None:
        validate_key(key)
        return self._run(f"cannot read {self._where(key)}", self._aread_ref, key)

    def list(self, prefix: str) -> list[str]:
        prefix = validate_prefix(prefix)
        return sorted(self._run(f"cannot list {self._where(prefix)}", self._alist, prefix))

    def exists(self, key: str) -> bool:
        validate_key(key)
        return self._run(f"cannot look up {self._where(key)}", self._astat, key) is not None

    def size(self, key: str) -> int:
        validate_key(key)
        where = self._where(key)
        n = self._run(f"cannot look up {where}", self._astat, key)
        if n is None:
            raise RemoteNotFound(f"cannot look up {where}: not found", "not found")
        return n

    def write(self, key: str, data: bytes) -> None:
        validate_key(key)
        self._run(f"cannot write {self._where(key)}", self._awrite, key, bytes(data))

    def write_if_absent(self, key: str, data: bytes) -> bool:
        validate_key(key)
        return self._run(f"cannot write {self._where(key)}", self._awrite, key, bytes(data), True)

    def write_many(self, items: dict[str, bytes]) -> None:
        for key in items:
            validate_key(key)
        if not items:
            return

        async def go() -> list[bool | BaseException]:
            await self._ready()
            return await self._gather(
                [functools.partial(self._awrite, k, bytes(v)) for k, v in items.items()]
            )

        results = self._run(f"cannot write to {self.url}", go)
        for key, res in zip(items, results):
            if isinstance(res, BaseException):
                raise self._translate(res, f"cannot write {self._where(key)}") from res

    def upload_file(self, key: str, local_path: str) -> None:
        validate_key(key)
        if not os.path.isfile(local_path):
            raise RemoteError(f"cannot upload {local_path} to {self._where(key)}: not a readable file")
        self._run(f"cannot upload {local_path} to {self._where(key)}", self._aupload, key, local_path)

    def delete(self, key: str) -> None:
        validate_key(key)
        self._run(f"cannot delete {self._where(key)}", self._adelete, key)

    def compare_and_swap(self, key: str, expected_token: str | None, data: bytes) -> bool:
        validate_key(key)
        return self._run(f"cannot update {self._where(key)}", self._acas, key, expected_token, bytes(data))

    async def _acas(self, key: str, expected_token: str | None, data: bytes) -> bool:
        await self._ready()
        # Our own retry loop around single-shot requests: a "precondition failed" answer to the first
        # request we sent is then definitive, and only after an unanswered request do we need to read the
        # key back to learn whether that request landed.
        maybe_landed = False
        last: BaseException | None = None
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                await _sleep(min(0.1 * 2**attempt, 2.0) * random.uniform(0.5, 1.5))
            outcome, err = await self._cas_once(key, expected_token, data)
            if outcome == CasOutcome.OK:
                return True
            if outcome == CasOutcome.REFUSED:
                return await self._landed(key, data) if maybe_landed else False
            if outcome == CasOutcome.UNKNOWN:
                maybe_landed = True
            last = err
        if maybe_landed and await self._landed(key, data):
            return True
        if last is None:
            raise RemoteUnavailable(f"cannot update {self._where(key)}: no answer", "no answer")
        raise self._translate(last, f"cannot update {self._where(key)}")

    async def _landed(self, key: str, data: bytes) -> bool:
        current = await self._aread_ref(key)
        return current is not None and current[0] == data


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# -- options and the factory -----------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise UsageError(f"option {name}={value!r}: expected true or false")


def pop_connections(options: dict[str, Any]) -> int:
    """Remove and validate the ``connections`` option (parallelism of ``*_many``)."""
    raw = options.pop("connections", DEFAULT_CONNECTIONS)
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise UsageError(f"option connections={raw!r}: expected a whole number") from None
    if not 1 <= n <= 256:
        raise UsageError(f"option connections={raw!r}: expected a number from 1 to 256")
    return n


def convert_options(
    scheme: str,
    options: dict[str, Any],
    constructor: Callable[..., Any],
    *,
    extra: Iterable[str] = (),
    refused: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check option names against ``constructor``'s parameters and convert string values to their types.

    The type comes from the parameter's default (bool, int, float); for parameters defaulting to None,
    ``true``/``false`` become booleans and numbers become numbers. Options that would store a credential
    in the repository config are refused with the reason in ``refused``.
    """
    import inspect

    params = {
        name: p
        for name, p in inspect.signature(constructor).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"
    }
    internal = {
        "asynchronous",
        "loop",
        "session",
        "session_kwargs",
        "config_kwargs",
        "client_kwargs",
        "s3_additional_kwargs",
    }
    allowed = (set(params) - internal - set(refused or ())) | set(extra)
    out: dict[str, Any] = {}
    for name, value in options.items():
        if refused and name in refused:
            raise UsageError(f"option {name!r} is not accepted for {scheme}:// remotes: {refused[name]}")
        if name not in allowed:
            known = ", ".join(sorted(allowed | {"connections"}))
            raise UsageError(f"unknown option {name!r} for {scheme}:// remotes (known: {known})")
        if not isinstance(value, str):
            out[name] = value
            continue
        default = params[name].default if name in params else None
        if isinstance(default, bool):
            out[name] = parse_bool(name, value)
        elif isinstance(default, int) and not isinstance(default, bool):
            try:
                out[name] = int(value)
            except ValueError:
                raise UsageError(f"option {name}={value!r}: expected a whole number") from None
        elif isinstance(default, float):
            try:
                out[name] = float(value)
            except ValueError:
                raise UsageError(f"option {name}={value!r}: expected a number") from None
        elif default is None and value.strip().lower() in ("true", "false"):
            out[name] = value.strip().lower() == "true"
        elif default is None and re.fullmatch(r"\d+", value.strip()):
            out[name] = int(value)
        elif default is None and re.fullmatch(r"\d*\.\d+", value.strip()):
            out[name] = float(value)
        else:
            out[name] = value
    return out


def split_bucket_url(url: str, scheme: str) -> tuple[str, str]:
    """``scheme://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``; RemoteError if malformed."""
    bucket, _, prefix = url[len(scheme) + 3 :].partition("/")
    if not bucket:
        raise RemoteError(f"invalid remote URL {url!r}: no bucket name")
    prefix = prefix.strip("/")
    if prefix:
        try:
            validate_prefix(prefix)
        except RemoteError:
            raise RemoteError(f"invalid remote URL {url!r}: empty, '.' or '..' path component") from None
    return bucket, prefix


def absolute_url(url: str, base: str | os.PathLike[str] | None = None) -> str:
    """``url`` with a relative folder path made absolute against ``base`` (default: the current folder).

    URLs with a scheme, absolute paths and ``~`` paths are returned unchanged: they mean the same from any
    folder. Does no I/O beyond reading the current folder.
    """
    text = url.strip() if isinstance(url, str) else url
    if not text or _SCHEME_RE.match(text) or text.startswith(("/", "~")):
        return url
    return os.path.abspath(os.path.join(base if base is not None else os.getcwd(), text))


def open_backend(url: str, options: dict[str, str] | None = None) -> Backend:
    """The backend for ``url``: a local path or ``file://``, ``s3://``, ``gs://`` (or ``gcs://``), ``memory://``.

    ``options`` (from ``dvx remote add --option KEY=VALUE``) go to the filesystem constructor
    (``endpoint_url``, ``profile``, ``anon``, ``requester_pays``...); ``connections`` (default 8) sets the
    parallelism of ``read_many``/``write_many``. Credentials come from the standard chains, never from
    options. Opening does no I/O; use :meth:`Backend.check` to probe the remote.
    """
    if not isinstance(url, str) or not url.strip():
        raise RemoteError("empty remote URL")
    url = url.strip()
    opts: dict[str, Any] = dict(options or {})
    connections = pop_connections(opts)
    match = _SCHEME_RE.match(url)
    scheme = match.group(1).lower() if match else ""
    if not scheme or scheme == "file":
        from .local import LocalBackend

        return LocalBackend.from_url(url, connections, opts)
    if scheme == "s3":
        from .s3 import S3Backend

        return S3Backend.from_url(url, connections, opts)
    if scheme in ("gs", "gcs"):
        from .gcs import GCSBackend

        return GCSBackend.from_url(url, connections, opts)
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend.from_url(url, connections, opts)
    raise RemoteError(
        f"unsupported remote URL scheme {scheme!r} (use a local path, file://, s3://, gs:// or memory://)"
    )


def one_line(text: str, limit: int = 300) -> str:
    """``text`` squeezed onto one line (server messages can hold newlines and whole HTML pages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def generic_reason(exc: BaseException) -> tuple[type[BackendError], str]:
    """Error class and one-line cause for exceptions any backend or library may raise."""
    import asyncio

    from fsspec.exceptions import FSTimeoutError

    if isinstance(exc, FileNotFoundError):
        return RemoteNotFound, "not found"
    if isinstance(exc, PermissionError):
        return RemoteAccessDenied, one_line(str(exc) or "permission denied")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, FSTimeoutError)):
        return RemoteUnavailable, "timed out"
    if isinstance(exc, ConnectionError):
        return RemoteUnavailable, one_line(f"connection failed: {exc}")
    module = type(exc).__module__ or ""
    if module.startswith("aiohttp"):
        return RemoteUnavailable, one_line(f"connection failed: {exc}" if str(exc) else type(exc).__name__)
    if isinstance(exc, OSError):
        return BackendError, one_line(exc.strerror or str(exc) or type(exc).__name__)
    return BackendError, one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def run_threaded(connections: int, fn: Callable[[str], T], keys: list[str]) -> list[T | BaseException]:
    """``fn`` over ``keys`` on up to ``connections`` threads, results (or raised errors) in order."""

    def safe(key: str) -> T | BaseException:
        try:
            return fn(key)
        except Exception as exc:
            return exc

    if len(keys) <= 1 or connections <= 1:
        return [safe(k) for k in keys]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(connections, len(keys)), thread_name_prefix="dvx-remote") as pool:
        return list(pool.map(safe, keys))
