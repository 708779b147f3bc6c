# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KB 256202 step 1 on the controller: where the media comes from, what it must hash to, how the copy is cut in
chunks (and resumed), whether the disk has room, and whether media already staged can be used as it is.

The staged media lives in ``dest``; while it is copied, fetched or extracted it lives in ``dest.partial`` (a
name no later step takes for media), and only media whose hashes were proven here is moved to ``dest``, with a
marker folder ``dest\\.configmgr_sql_upgrade`` (source.json from the controller, files.sha256 written by the
host) that lets a re-run prove it again without copying.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import hashlib
import json
import ntpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._action.errors import PlanError

MARKER_DIR = ".configmgr_sql_upgrade"
PARTIAL_SUFFIX = ".partial"
DEFAULT_CHUNK_MIB = 64
#: ISO extraction needs the image and its content on disk at once; a folder needs its size, plus this margin.
SPACE_MARGIN_BYTES = 256 * 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_DEST = re.compile(r"^[A-Za-z]:\\(?:[^\\/:*?\"<>|\x00-\x1f]+\\)*[^\\/:*?\"<>|\x00-\x1f]+$")
_UNC = re.compile(r"^\\\\[^\\/:*?\"<>|\x00-\x1f]+\\[^\\/:*?\"<>|\x00-\x1f$]+[$]?(?:\\[^\\/:*?\"<>|\x00-\x1f]+)*$")
_URL = re.compile(r"^https?://[^\s\x00-\x1f]+$", re.IGNORECASE)
_CHECKSUM_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(.+)$")
SOURCES = ("controller", "url", "share")


def validate_dest(dest: Any) -> str:
    """A local folder below a drive root: no UNC, no relative parts, no wildcard or reserved characters."""
    if not isinstance(dest, str) or not _DEST.fullmatch(dest.rstrip("\\")) or ".." in dest.split("\\"):
        raise PlanError(f"option dest must be a local folder below a drive root such as C:\\SQLMedia\\SQL2019, "
                        f"got {dest!r}")
    if dest.rstrip("\\").lower().endswith(PARTIAL_SUFFIX):
        raise PlanError(f"option dest must not end in {PARTIAL_SUFFIX} (the name of media being staged)")
    return dest.rstrip("\\")


def validate_share_path(path: Any) -> str:
    if not isinstance(path, str) or not _UNC.fullmatch(path.rstrip("\\")):
        raise PlanError("option share_path must be a UNC path such as \\\\fileserver\\media\\SQL2019.iso, "
                        f"got {path!r}")
    return path.rstrip("\\")


def share_root(path: str) -> str:
    """\\\\server\\share of a UNC path (what gets the credentials)."""
    parts = path.lstrip("\\").split("\\")
    return "\\\\" + parts[0] + "\\" + parts[1]


def validate_url(url: Any) -> str:
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise PlanError(f"option url must be an http:// or https:// URL, got {url!r}")
    return url


def parse_checksum(value: Any) -> str:
    """A SHA-256 as 64 hex digits, optionally written sha256:HEX; lower-cased."""
    text = str(value).strip() if isinstance(value, str) else ""
    if text.lower().startswith("sha256:"):
        text = text[7:].strip()
    if not _HEX64.fullmatch(text):
        raise PlanError("option checksum must be a SHA-256 (64 hexadecimal digits, optionally prefixed sha256:), "
                        f"got {value!r}")
    return text.lower()


def parse_checksum_file(text: str, where: str) -> dict[str, str]:
    """sha256sum's format ('HEX  name' or 'HEX *name', one file per line, # comments): name -> hash. Names use
    / or \\; they are relative to the source."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _CHECKSUM_LINE.match(line)
        if not match:
            raise PlanError(f"{where} line {number} is not 'SHA256  name': {line[:80]!r}")
        name = normalize_relative(match.group(2).strip(), f"{where} line {number}")
        if name.lower() in (k.lower() for k in out):
            raise PlanError(f"{where} names {name} twice")
        out[name] = match.group(1).lower()
    if not out:
        raise PlanError(f"{where} lists no file")
    return out


def normalize_relative(name: str, where: str) -> str:
    parts = [p for p in name.replace("/", "\\").split("\\") if p not in ("", ".")]
    if not parts or ".." in parts or any(re.search(r"[:*?\"<>|\x00-\x1f]", p) for p in parts):
        raise PlanError(f"{where}: {name!r} is not a relative file name")
    return "\\".join(parts)


def is_iso(name: str) -> bool:
    return name.lower().endswith(".iso")


def expected_hashes(source_files: Sequence[str], checksum: str | None,
                    checksum_map: Mapping[str, str] | None) -> dict[str, str]:
    """What each source file must hash to. A single file (an ISO) takes checksum, or its line of the checksum file
    (matched by file name); a folder takes the checksum file, which must name every file."""
    if checksum and checksum_map:
        raise PlanError("options checksum and checksum_file are mutually exclusive")
    if checksum:
        if len(source_files) != 1:
            raise PlanError("option checksum is for a single file (an ISO image); for a folder give checksum_file "
                            "with a line per file")
        return {source_files[0]: checksum}
    if not checksum_map:
        return {}
    lower = {k.lower(): v for k, v in checksum_map.items()}
    if len(source_files) == 1:
        name = source_files[0]
        for key in (name.lower(), ntpath.basename(name).lower()):
            if key in lower:
                return {name: lower[key]}
        raise PlanError(f"the checksum file has no line for {ntpath.basename(name)}")
    missing = [f for f in source_files if f.lower() not in lower]
    if missing:
        raise PlanError(f"the checksum file has no line for {len(missing)} file(s) of the source, first {missing[0]}")
    return {f: lower[f.lower()] for f in source_files}


def hash_problems(expected: Mapping[str, str], actual: Mapping[str, Any]) -> list[str]:
    """Each file whose SHA-256 is not the expected one, or that is missing."""
    lower = {str(k).lower(): str(v).lower() for k, v in actual.items()}
    problems = []
    for name, want in expected.items():
        got = lower.get(name.lower())
        if got is None:
            problems.append(f"{name} is missing")
        elif got != want.lower():
            problems.append(f"{name} has SHA-256 {got}, expected {want.lower()}")
    return problems


@dataclass(frozen=True)
class Chunk:
    file_index: int
    index: int
    offset: int
    length: int
    sha256: str

    @property
    def name(self) -> str:
        """The chunk's file name in dest.partial\\chunks (what the host lists back to resume)."""
        return f"{self.file_index:05d}.{self.index:06d}.part"


def chunks_of(data_reader: Any, file_index: int, size: int, chunk_bytes: int) -> list[Chunk]:
    """The chunks of one file; data_reader(offset, length) returns its bytes (hashed, not kept)."""
    if chunk_bytes <= 0:
        raise PlanError("chunk size must be positive")
    out = []
    offset = 0
    index = 0
    while offset < size or (size == 0 and index == 0):
        length = min(chunk_bytes, size - offset)
        out.append(Chunk(file_index, index, offset, length, hashlib.sha256(data_reader(offset, length)).hexdigest()))
        offset += length
        index += 1
    return out


def chunks_to_send(chunks: Sequence[Chunk], present: Mapping[str, Any]) -> list[Chunk]:
    """Resume: a chunk already in dest.partial\\chunks with its size and hash is not sent again."""
    todo = []
    for chunk in chunks:
        have = present.get(chunk.name)
        if not isinstance(have, Mapping) or have.get("size") != chunk.length or \
                str(have.get("sha256", "")).lower() != chunk.sha256:
            todo.append(chunk)
    return todo


def space_problem(needed: int, free: Any, dest: str) -> str | None:
    if not isinstance(free, int) or isinstance(free, bool):
        return None
    if free < needed + SPACE_MARGIN_BYTES:
        return (f"the volume of {dest} has {free // (1024 * 1024)} MiB free; the media needs "
                f"{(needed + SPACE_MARGIN_BYTES) // (1024 * 1024)} MiB (its size, the copy being staged, and "
                f"{SPACE_MARGIN_BYTES // (1024 * 1024)} MiB to spare). Free space or choose another dest")
    return None


def space_needed(total_bytes: int, iso: bool) -> int:
    """The image and its extracted content are on disk at once while an ISO is extracted."""
    return total_bytes * 2 if iso else total_bytes


def source_record(kind: str, location: str, hashes: Mapping[str, str]) -> str:
    """source.json of the marker: where the media came from and what the source hashed to."""
    return json.dumps({"source": kind, "location": location, "sha256": dict(sorted(hashes.items()))},
                      sort_keys=True, indent=1)


def staged_matches(marker_text: str | None, kind: str, location: str, expected: Mapping[str, str]) -> str | None:
    """Why media already in dest is not the media asked for (None: it is, as far as its record says)."""
    if marker_text is None:
        return "dest holds no media staged by this collection"
    try:
        record = json.loads(marker_text)
        recorded = {str(k).lower(): str(v).lower() for k, v in dict(record["sha256"]).items()}
        source, where = str(record["source"]), str(record["location"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return "its record (source.json) cannot be read"
    if expected:
        if {k.lower(): v.lower() for k, v in expected.items()} != recorded:
            return "it was staged from a source with other checksums"
        return None
    if (source, where.lower()) != (kind, location.lower()):
        return f"it was staged from {source} {where}"
    return None


def parse_manifest(text: str | None) -> dict[str, str]:
    """files.sha256 (written by the host after staging, sha256sum's format)."""
    if not text:
        return {}
    try:
        return parse_checksum_file(text, "files.sha256")
    except PlanError:
        return {}


def version_from_resource(value: Any) -> str | None:
    """setup.exe's ProductVersion ('15.0.2000.5', sometimes with a suffix after a space)."""
    if not isinstance(value, str):
        return None
    head = value.strip().split(" ", 1)[0]
    return head if re.fullmatch(r"\d{1,5}(\.\d{1,6}){1,3}", head) else None
