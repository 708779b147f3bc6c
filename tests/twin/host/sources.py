"""Where a host can fetch SQL Server media from besides the controller: web servers and file shares it reaches.

Both stand for machines outside the host, so they are plain data a test sets (``host.web[url] = bytes``,
``host.shares[root] = Share(...)``); anything not there answers as a real server would (HTTP 404, error 67).
An ISO image travels as the twin's own format (``make_iso``): copy it, hash it, and the twin can still mount it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from .errors import Unmodelled

ISO_MAGIC = b"TWIN ISO9660\r\n"


@dataclass
class Share:
    """\\\\server\\share: the account that may read it and its files (relative path -> bytes)."""

    user: str
    password: str
    files: dict[str, bytes] = field(default_factory=dict)


def make_iso(files: dict[str, bytes]) -> bytes:
    """The bytes of a twin ISO image holding files (relative path -> bytes)."""
    body = {name.replace("/", "\\"): base64.b64encode(data).decode("ascii") for name, data in files.items()}
    return ISO_MAGIC + json.dumps(body, sort_keys=True).encode("ascii")


def read_iso(data: bytes, where: str) -> dict[str, bytes]:
    """The files of a twin ISO image; anything else is not an image the model can mount."""
    if not data.startswith(ISO_MAGIC):
        # Mount-DiskImage on a file that is no ISO 9660 / UDF image: "The file or directory is corrupted and
        # unreadable" (ERROR_FILE_CORRUPT, 1392) is what Windows says; the model only knows its own images.
        raise Unmodelled(f"{where} is not a twin ISO image (make_iso)")
    body = json.loads(data[len(ISO_MAGIC):].decode("ascii"))
    return {name: base64.b64decode(value) for name, value in body.items()}
