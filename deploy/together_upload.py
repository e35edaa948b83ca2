"""Sending adapter files to Together's signed part URLs.

Kept apart from `deploy.together` (the registry and validation calls through the SDK; endpoint
calls are in `deploy.together_endpoint`) because the file transfer is plain HTTP: each file is
cut into parts with an S3-style ETag, and each part is PUT to the signed URL Together planned
for it by a client that never carries the API key. Retrying is the caller's: a failed PUT
raises `PutFailed` with the status it got.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from deploy import DeployError

PART_BYTES = 20 * 1024 * 1024  # the part size Together's own CLI uploads with


class PutFailed(Exception):
    """A part PUT to a signed URL failed (status None: no answer)."""

    def __init__(self, status: int | None, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class LocalFile:
    path: str  # its name in the upload
    file: Path
    parts: tuple[tuple[int, int], ...]  # (offset, size), numbered from 1
    hash: str  # S3-style ETag: md5, or md5 of the part md5s plus "-N"

    def read(self, number: int) -> bytes:
        offset, size = self.parts[number - 1]
        with self.file.open("rb") as handle:
            handle.seek(offset)
            return handle.read(size)


def local_file(path: str, file: Path) -> LocalFile:
    """`file`, to be uploaded as `path`: its parts of `PART_BYTES` and its ETag."""
    size = file.stat().st_size
    parts = tuple((o, min(PART_BYTES, size - o)) for o in range(0, size, PART_BYTES))
    local = LocalFile(path, file, parts, "")
    md5s = [hashlib.md5(local.read(n)).digest() for n in range(1, len(parts) + 1)]  # noqa: S324
    if len(md5s) == 1:
        return LocalFile(path, file, parts, md5s[0].hex())
    etag = f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"  # noqa: S324
    return LocalFile(path, file, parts, etag)


def signed_url_client() -> httpx.Client:
    """The HTTP client for signed part URLs only: it never carries the API key."""
    return httpx.Client(timeout=600.0)


def put_file(
    local: LocalFile, remote: dict[str, Any], put: Callable[[str, str, dict[str, str], bytes], str]
) -> dict[str, Any]:
    """Send `local`'s parts as Together's plan entry `remote` asks; the entry for `complete`.

    `put(what, url, headers, data)` sends one part and returns its ETag (retrying as it sees
    fit). A file Together already has (`skipUpload`) is not sent.
    """
    if remote.get("skipUpload"):
        return {"path": local.path, "hash": local.hash, "skipUpload": True}
    parts = remote.get("parts") or []
    if len(parts) != len(local.parts):
        raise DeployError(
            f"Together planned {len(parts)} parts for {local.path}, not {len(local.parts)}"
        )
    done = []
    for part in parts:
        number = int(part["partNumber"])
        data = local.read(number)
        headers = dict(part.get("headers") or {})
        etag = put(f"PUT of {local.path} part {number}", str(part["url"]), headers, data)
        done.append({"partNumber": number, "hash": etag})
    details = {"uploadId": remote.get("uploadId", ""), "parts": done}
    return {"path": local.path, "hash": local.hash, "uploadDetails": details}


def put_part(http: httpx.Client, url: str, headers: dict[str, str], data: bytes) -> str:
    """PUT one part to its signed URL; its ETag."""
    try:
        response = http.put(url, headers=headers, content=data)
    except httpx.HTTPError as exc:  # the URL carries a signature: name the error type only
        raise PutFailed(None, type(exc).__name__) from None
    if response.status_code != 200:
        raise PutFailed(response.status_code, response.text[:300])
    return response.headers.get("etag", "").strip('"')
