"""Google Cloud Storage remotes, on gcsfs (JSON API over aiohttp).

Credentials come from Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth
application-default login``, the metadata server) or the ``token`` option (``anon``, ``google_default``,
``cloud`` or a path to a service-account file). With ``STORAGE_EMULATOR_HOST`` set (fake-gcs-server and other
emulators) requests go to the emulator, anonymously unless ``token`` says otherwise.

Compare-and-swap is a JSON-API *multipart* upload with ``ifGenerationMatch=<generation>`` (0: must not
exist); the generation is the version token. Multipart, not media or resumable: fake-gcs-server enforces
the precondition only on multipart uploads (real GCS enforces it on all three).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from typing import Any
from urllib.parse import quote

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

#: Timeouts of the single-shot requests of compare-and-swap (seconds).
_CAS_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 10.0
#: Writes from this size on use a resumable upload (gcsfs's); smaller ones one multipart request.
_RESUMABLE_FROM = 8 * 2**20


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/related`` upload body (metadata, then data) and its content type.

    The boundary is random, so no content can end a part early.
    """
    boundary = f"dvx-{uuid.uuid4().hex}"
    meta = json.dumps({"name": name}).encode()
    body = b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            meta,
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f'multipart/related; boundary="{boundary}"'


def _import_gcsfs() -> Any:
    # Current gcsfs, when GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT is unset, swaps in an "extended" filesystem that
    # asks a gRPC control API for every bucket's type; against an emulator (no TLS, no gRPC) that handshake
    # fails and waits 60 s per bucket before falling back. dvx uses no zonal/HNS-only feature, so turn it
    # off unless the user chose otherwise. It must be set before gcsfs is first imported.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    # gcsfs logs a full traceback (logger.exception) for every non-retriable HTTP error; with no handler
    # configured Python prints those to stderr. dvx reports the error itself, in one line.
    log = logging.getLogger("gcsfs")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return gcsfs


class GCSBackend(AsyncBackend):
    """A prefix of a GCS bucket. Version token: the object's generation."""

    def __init__(self, url: str, bucket: str, prefix: str, connections: int, options: dict[str, Any]) -> None:
        super().__init__(url, f"{bucket}/{prefix}" if prefix else bucket, connections, options)
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, connections: int, options: dict[str, Any]) -> GCSBackend:
        gcsfs = _import_gcsfs()
        bucket, prefix = split_bucket_url(url, url.split("://", 1)[0])
        opts = convert_options("gs", options, gcsfs.GCSFileSystem.__init__)
        norm = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
        return cls(norm, bucket, prefix, connections, opts)

    def _make_fs(self) -> Any:
        import aiohttp

        gcsfs = _import_gcsfs()
        opts = dict(self.options)
        if os.environ.get("STORAGE_EMULATOR_HOST") and "token" not in opts:
            opts["token"] = "anon"  # emulators take no credentials; don't go looking for any
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request)
        # Own instance (no fsspec instance cache) so the trace counts only this backend's requests; no
        # listings cache, since other processes change the bucket.
        return gcsfs.GCSFileSystem(
            skip_instance_cache=True,
            use_listings_cache=False,
            session_kwargs={"trace_configs": [trace]},
            **opts,
        )

    async def _on_request(self, *_: Any) -> None:
        # Every HTTP request the session sends, gcsfs's retries included.
        self._count()

    async def _ready(self) -> None:
        await self.fs._set_session()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- requests -------------------------------------------------------------------------------------
    async def _aread(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        await self._ready()
        data: bytes = await self.fs._cat_file(self._path(key), start=start, end=end)
        return data

    async def _aread_ref(self, key: str) -> tuple[bytes, str] | None:
        await self._ready()
        try:
            headers, body = await self.fs._call("GET", self.fs.url(self._path(key)))
        except FileNotFoundError:
            return None
        generation = headers.get("X-Goog-Generation")
        if generation is None:
            # No generation header (a proxy dropped it?): ask for metadata, then read that generation.
            meta = await self.fs._call("GET", "b/{}/o/{}", self.bucket, self._key(key), json_out=True)
            generation = str(meta["generation"])
            _, body = await self.fs._call("GET", self.fs.url(self._path(key), generation=generation))
        return bytes(body), str(generation)

    async def _cas_once(
        self, key: str, expected_token: str | None, data: bytes
    ) -> tuple[str, BaseException | None]:
        import aiohttp

        gcsfs = _import_gcsfs()
        fs = self.fs
        session = await fs._set_session()
        body, content_type = _multipart(self._key(key), data)
        params = fs._get_params(
            {
                "uploadType": "multipart",
                "ifGenerationMatch": "0" if expected_token is None else expected_token,
            }
        )
        headers = fs._get_headers({"Content-Type": content_type})
        url = self._upload_url()
        timeout = aiohttp.ClientTimeout(total=_CAS_TIMEOUT, connect=_CONNECT_TIMEOUT)
        # One request, no retry wrapper (gcsfs's `_call` retries silently): we must know each one's fate.
        try:
            async with session.post(url, params=params, data=body, headers=headers, timeout=timeout) as resp:
                status = resp.status
                content = await resp.read()
        except aiohttp.ClientConnectorError as exc:
            return CasOutcome.RETRY, exc  # never connected: nothing was sent
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, OSError) as exc:
            return CasOutcome.UNKNOWN, exc  # sent, no answer: it may have landed
        if status == 200:
            return CasOutcome.OK, None
        if status == 412:
            return CasOutcome.REFUSED, None
        err: BaseException
        try:
            gcsfs.retry.validate_response(status, content, url)
        except Exception as exc:  # the same exception gcsfs would raise, for the same translation
            err = exc
        else:
            err = gcsfs.retry.HttpError(
                {"code": status, "message": one_line(content.decode(errors="replace"))}
            )
        if status in (408, 429):
            return CasOutcome.RETRY, err  # GCS allows about one write per second per object name
        if status >= 500:
            return CasOutcome.UNKNOWN, err
        raise err

    async def _alist(self, prefix: str) -> list[str]:
        await self._ready()
        full = "/".join(p for p in (self.prefix, prefix) if p)
        query = f"{full}/" if full else ""
        skip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        token: str | None = None
        while True:
            out = await self.fs._call(
                "GET", "b/{}/o", self.bucket, json_out=True, prefix=query or None, pageToken=token
            )
            for item in out.get("items", []):
                rel = str(item["name"])[skip:]
                if rel and not rel.endswith("/"):  # "folder" placeholder objects are not keys
                    keys.append(rel)
            token = out.get("nextPageToken")
            if not token:
                return keys

    async def _astat(self, key: str) -> int | None:
        await self._ready()
        try:
            meta = await self.fs._call("GET", "b/{}/o/{}", self.bucket, self._key(key), json_out=True)
        except FileNotFoundError:
            return None
        return int(meta["size"])

    async def _adelete(self, key: str) -> None:
        await self._ready()
        try:
            await self.fs._call("DELETE", "b/{}/o/{}", self.bucket, self._key(key))
        except FileNotFoundError:
            pass

    async def _awrite(self, key: str, data: bytes, create_only: bool = False) -> bool:
        await self._ready()
        if len(data) >= _RESUMABLE_FROM:
            # gcsfs's resumable upload: no multipart framing, published when the last chunk lands.
            try:
                await self.fs._pipe_file(
                    self._path(key),
                    data,
                    chunksize=_RESUMABLE_FROM,  # below its chunk size gcsfs would use its multipart upload
                    mode="create" if create_only else "overwrite",
                )
            except FileExistsError:  # 412 on ifGenerationMatch=0
                if create_only:
                    return False
                raise
            return True
        # Our own multipart upload rather than gcsfs's: gcsfs frames every body with the fixed boundary
        # "==0==", so data containing "\r\n--==0==" is cut short or refused. gcsfs's `_call` still gives
        # credentials and retries (safe: the write is unconditional, or create-only where "exists" is fine).
        body, content_type = _multipart(self._key(key), data)
        params = {"uploadType": "multipart"}
        if create_only:
            params["ifGenerationMatch"] = "0"
        try:
            await self.fs._call(
                "POST", self._upload_url(), headers={"Content-Type": content_type}, data=body, **params
            )
        except FileExistsError:  # 412 on ifGenerationMatch=0
            if create_only:
                return False
            raise
        return True

    async def _aupload(self, key: str, local_path: str) -> None:
        await self._ready()
        if os.path.getsize(local_path) < _RESUMABLE_FROM:
            with open(local_path, "rb") as f:
                await self._awrite(key, f.read())
            return
        # Resumable upload in chunks; the object appears only when the last chunk lands.
        await self.fs._put_file(local_path, self._path(key))

    def _upload_url(self) -> str:
        return f"{self.fs._location}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o"

    # -- errors ---------------------------------------------------------------------------------------
    def _translate(self, exc: BaseException, what: str) -> RemoteError:
        if isinstance(exc, RemoteError):
            return exc
        cls, reason = self._reason(exc)
        return cls(f"{what}: {reason}", reason)

    def _reason(self, exc: BaseException) -> tuple[type[BackendError], str]:
        gcsfs = _import_gcsfs()
        if isinstance(exc, FileNotFoundError):
            text = str(exc)
            # gcsfs names the request URL; a 404 on the bucket itself (no object part) means no bucket.
            if "/o/" not in text and "/download/" not in text and f"b/{self.bucket}" in text:
                return RemoteNotFound, f"bucket '{self.bucket}' does not exist"
            return RemoteNotFound, "not found"
        if isinstance(exc, gcsfs.retry.HttpError):
            code = exc.code if isinstance(exc.code, int) else None
            message = one_line(str(exc.message or ""))
            if code in (401, 403):
                return RemoteAccessDenied, f"access denied ({message})"
            if code == 416:
                return BackendError, "requested range is beyond the end of the object"
            if code == 412:
                return BackendError, "precondition failed (the object changed)"
            if code is not None and (code >= 500 or code in (408, 429)):
                return RemoteUnavailable, f"server error ({message})"
            return BackendError, f"HTTP {code}: {message}"
        if isinstance(exc, OSError) and str(exc).startswith("Forbidden"):
            return RemoteAccessDenied, one_line(f"access denied ({str(exc).split(chr(10), 1)[-1]})")
        if isinstance(exc, ValueError) and str(exc).startswith("Bad Request"):
            return BackendError, one_line(str(exc))
        module = type(exc).__module__ or ""
        if module.startswith("google.auth"):
            return RemoteAccessDenied, one_line(
                f"Google credentials problem: {exc} (run `gcloud auth application-default login` or set "
                "GOOGLE_APPLICATION_CREDENTIALS)"
            )
        if module.startswith("aiohttp") and "Connect" in type(exc).__name__:
            return RemoteUnavailable, one_line(f"cannot connect to {self.fs._location}: {exc}")
        return generic_reason(exc)
