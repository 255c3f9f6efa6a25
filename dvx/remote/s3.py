"""S3 (and S3-compatible) remotes, on s3fs/aiobotocore.

Credentials and endpoint come from the standard AWS chain (``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``,
``~/.aws``, ``AWS_ENDPOINT_URL``) or the ``endpoint_url``/``profile``/``anon`` options; never from the dvx
config. Compare-and-swap is ``PutObject`` with ``If-Match: <etag>`` / ``If-None-Match: *`` (the ETag is the
version token), sent through a second client with retries turned off so that the outcome of each request
is known (see :meth:`dvx.remote.backend.AsyncBackend._acas`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any
from urllib.parse import urlsplit

from ..errors import RemoteError
from .backend import (
    AsyncBackend,
    BackendError,
    CasOutcome,
    RemoteAccessDenied,
    RemoteNotFound,
    RemoteUnavailable,
    convert_options,
    generic_reason,
    one_line,
    split_bucket_url,
)

_CREDENTIAL_OPTIONS = {
    name: "it is a credential and would be stored in the config; use AWS_PROFILE, ~/.aws or the AWS_* "
    "environment variables instead"
    for name in ("key", "secret", "token", "username", "password")
}
_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AccountProblem",
    "RequestTimeTooSkewed",
}
_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}


_sessions: dict[tuple[Any, ...], Any] = {}
_sessions_lock = threading.Lock()


def _shared_session(profile: str | None) -> Any:
    """The process's botocore session for ``profile`` and the current ``AWS_*`` environment.

    A client made from a fresh session reloads the S3 service model (a few hundred ms); sharing the session
    makes every client after the first cheap. Keyed on the environment, so a changed environment (tests,
    long-lived processes) gets a session that sees it.
    """
    import aiobotocore.session

    key = (profile, tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = aiobotocore.session.AioSession(profile=profile)
        return session


def _client_error(exc: BaseException) -> Any:
    """The botocore ClientError behind ``exc`` (s3fs re-raises them as OSError with the cause set)."""
    from botocore.exceptions import ClientError

    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 5:
        if isinstance(cur, ClientError):
            return cur
        cur = cur.__cause__
        seen += 1
    return None


def _code_status(err: Any) -> tuple[str, int | None]:
    response = getattr(err, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status if isinstance(status, int) else None


class S3Backend(AsyncBackend):
    """A prefix of an S3 bucket. Version token: the object's ETag."""

    def __init__(self, url: str, bucket: str, prefix: str, connections: int, options: dict[str, Any]) -> None:
        super().__init__(url, f"{bucket}/{prefix}" if prefix else bucket, connections, options)
        self.bucket = bucket
        self.prefix = prefix
        self._strict_obj: Any = None
        self._hooked: list[Any] = []

    @classmethod
    def from_url(cls, url: str, connections: int, options: dict[str, Any]) -> S3Backend:
        import s3fs

        bucket, prefix = split_bucket_url(url, url.split("://", 1)[0])
        opts = convert_options(
            "s3", options, s3fs.S3FileSystem.__init__, extra=("profile",), refused=_CREDENTIAL_OPTIONS
        )
        norm = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return cls(norm, bucket, prefix, connections, opts)

    # -- clients --------------------------------------------------------------------------------------
    def _new_fs(self, config: dict[str, Any]) -> Any:
        import s3fs

        options = dict(self.options)
        session = _shared_session(options.pop("profile", None))
        config = {"max_pool_connections": max(10, self.connections), **config}
        # Own instance (no fsspec instance cache): the request counter hooks into its client, and listings
        # must never come from a cache since other processes change the bucket.
        return s3fs.S3FileSystem(
            skip_instance_cache=True,
            use_listings_cache=False,
            config_kwargs=config,
            session=session,
            **options,
        )

    def _make_fs(self) -> Any:
        return self._new_fs({})

    @property
    def _strict(self) -> Any:
        """A client that sends each request exactly once, with bounded timeouts (for compare-and-swap)."""
        if self._strict_obj is None:
            with self._fs_lock:
                if self._strict_obj is None:
                    self._strict_obj = self._new_fs(
                        {"retries": {"total_max_attempts": 1}, "connect_timeout": 5, "read_timeout": 20}
                    )
        return self._strict_obj

    async def _client(self, fs: Any) -> Any:
        client = await fs.set_session()
        if not any(c is client for c in self._hooked):
            # Fires once per HTTP attempt, retries included: request_count is what was really sent.
            client.meta.events.register("before-send.s3", self._on_send)
            self._hooked.append(client)
        return client

    def _on_send(self, **_: Any) -> None:
        self._count()

    async def _ready(self) -> None:
        await self._client(self.fs)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- requests -------------------------------------------------------------------------------------
    async def _aread(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        await self._ready()
        if start is None:
            # max_concurrency=1: one GET, not a HEAD for the size followed by ranged GETs.
            data: bytes = await self.fs._cat_file(self._path(key), max_concurrency=1)
        else:
            data = await self.fs._cat_file(self._path(key), start=start, end=end)
        return data

    async def _aread_ref(self, key: str) -> tuple[bytes, str] | None:
        await self._ready()
        try:
            resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError as exc:
            code, _ = _code_status(_client_error(exc))
            if code == "NoSuchBucket":
                raise
            return None
        try:
            body: bytes = await resp["Body"].read()
        finally:
            resp["Body"].close()
        # Content and ETag from the same response: a consistent pair.
        return body, str(resp["ETag"])

    async def _cas_once(
        self, key: str, expected_token: str | None, data: bytes
    ) -> tuple[str, BaseException | None]:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            HTTPClientError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        client = await self._client(self._strict)
        cond = {"IfNoneMatch": "*"} if expected_token is None else {"IfMatch": expected_token}
        try:
            await client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **cond)
            return CasOutcome.OK, None
        except ClientError as exc:
            code, status = _code_status(exc)
            if status == 412 or code == "PreconditionFailed":
                return CasOutcome.REFUSED, exc
            if code == "NoSuchKey":  # If-Match on a key that does not exist (any more)
                return CasOutcome.REFUSED, exc
            if status == 409 or code in ("ConditionalRequestConflict", "OperationAborted"):
                return CasOutcome.RETRY, exc  # a concurrent write was in flight; ours was not applied
            if status == 429 or code in _THROTTLE_CODES:
                return CasOutcome.RETRY, exc
            if status is not None and status >= 500:
                return CasOutcome.UNKNOWN, exc
            raise
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            return CasOutcome.RETRY, exc  # never connected: nothing was sent
        except (HTTPClientError, BotoConnectionError, asyncio.TimeoutError, OSError) as exc:
            return CasOutcome.UNKNOWN, exc  # sent, no answer: it may have landed
        except Exception as exc:
            if type(exc).__module__.startswith("aiohttp"):
                return CasOutcome.UNKNOWN, exc
            raise

    async def _alist(self, prefix: str) -> list[str]:
        await self._ready()
        full = "/".join(p for p in (self.prefix, prefix) if p)
        query = f"{full}/" if full else ""
        skip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": query}
            if token:
                kw["ContinuationToken"] = token
            out = await self.fs._call_s3("list_objects_v2", **kw)
            for obj in out.get("Contents", []):
                rel = str(obj["Key"])[skip:]
                if rel and not rel.endswith("/"):  # "folder" placeholder objects are not keys
                    keys.append(rel)
            token = out.get("NextContinuationToken")
            if not out.get("IsTruncated") or not token:
                return keys

    async def _astat(self, key: str) -> int | None:
        await self._ready()
        try:
            out = await self.fs._call_s3("head_object", Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None
        return int(out["ContentLength"])

    async def _adelete(self, key: str) -> None:
        await self._ready()
        try:
            await self.fs._call_s3("delete_object", Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError as exc:
            code, _ = _code_status(_client_error(exc))
            if code == "NoSuchBucket":
                raise

    async def _awrite(self, key: str, data: bytes, create_only: bool = False) -> bool:
        await self._ready()
        try:
            await self.fs._pipe_file(self._path(key), data, mode="create" if create_only else "overwrite")
        except FileExistsError:
            if create_only:
                return False
            raise
        except OSError as exc:
            code, status = _code_status(_client_error(exc))
            if create_only and (status == 412 or code == "PreconditionFailed"):
                return False
            raise
        return True

    async def _aupload(self, key: str, local_path: str) -> None:
        await self._ready()
        # s3fs streams big files as a multipart upload, published atomically by CompleteMultipartUpload.
        await self.fs._put_file(local_path, self._path(key))

    # -- errors ---------------------------------------------------------------------------------------
    def _translate(self, exc: BaseException, what: str) -> RemoteError:
        if isinstance(exc, RemoteError):
            return exc
        cls, reason = self._reason(exc)
        return cls(f"{what}: {reason}", reason)

    def _reason(self, exc: BaseException) -> tuple[type[BackendError], str]:
        from botocore import exceptions as bx

        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return RemoteAccessDenied, (
                "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "configure ~/.aws, or use --option anon=true for a public bucket)"
            )
        if isinstance(exc, bx.ProfileNotFound):
            return RemoteAccessDenied, one_line(str(exc))
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
            # The message names the whole request URL; the endpoint is what the user can act on.
            parts = urlsplit(str(getattr(exc, "kwargs", {}).get("endpoint_url", "")))
            host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname  # never user:password@
            endpoint = f"{parts.scheme}://{host}" if host else "the S3 endpoint"
            verb = (
                "timed out connecting to" if isinstance(exc, bx.ConnectTimeoutError) else "cannot connect to"
            )
            return RemoteUnavailable, f"{verb} {endpoint}"
        if isinstance(exc, bx.ReadTimeoutError):
            return RemoteUnavailable, "timed out waiting for the server's answer"
        if isinstance(exc, (bx.HTTPClientError, bx.ConnectionError)):
            return RemoteUnavailable, one_line(f"connection failed: {exc}")
        if isinstance(exc, bx.NoRegionError):
            return BackendError, "no AWS region configured (set AWS_DEFAULT_REGION or --option endpoint_url)"
        err = _client_error(exc)
        if err is not None:
            code, status = _code_status(err)
            message = one_line(err.response.get("Error", {}).get("Message") or code or str(err))
            if code == "NoSuchBucket":
                return RemoteNotFound, f"bucket '{self.bucket}' does not exist"
            if code in ("NoSuchKey", "404") or status == 404:
                return RemoteNotFound, "not found"
            if code in _DENIED_CODES or status in (401, 403):
                return RemoteAccessDenied, f"access denied ({code or status}: {message})"
            if code == "InvalidRange" or status == 416:
                return BackendError, "requested range is beyond the end of the object"
            if code in _THROTTLE_CODES or status == 429 or (status is not None and status >= 500):
                return RemoteUnavailable, f"server error ({code or status}: {message})"
            if status == 412 or code == "PreconditionFailed":
                return BackendError, "precondition failed (the object changed)"
            return BackendError, f"{code or status}: {message}"
        return generic_reason(exc)
