"""A small NTFS-like file system: drive-letter paths, case-insensitive and case-preserving."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import Unmodelled, WindowsError_

if TYPE_CHECKING:
    from .clock import Clock

_DRIVE = re.compile(r"^[A-Za-z]:$")


def normalize_path(path: str) -> str:
    """'c:/Program Files//X\\' -> 'C:\\Program Files\\X'. UNC and relative paths are not modelled."""
    text = path.replace("/", "\\")
    if text.startswith("\\\\"):
        # A share reached from a WinRM session needs delegation (the double hop): not modelled here.
        raise Unmodelled(f"UNC path {path!r}")
    parts = [p for p in text.split("\\") if p not in ("", ".")]
    if not parts or not _DRIVE.match(parts[0]):
        raise Unmodelled(f"path {path!r} is not an absolute drive-letter path")
    out: list[str] = [parts[0].upper()]
    for part in parts[1:]:
        if part == "..":
            if len(out) > 1:
                out.pop()
            continue
        out.append(part)
    return "\\".join(out) if len(out) > 1 else out[0] + "\\"


def parent_of(path: str) -> str | None:
    norm = normalize_path(path)
    if norm.endswith("\\"):
        return None
    head = norm.rsplit("\\", 1)[0]
    return head + "\\" if _DRIVE.match(head) else head


SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"


@dataclass
class Entry:
    path: str
    is_dir: bool
    data: bytes
    mtime: float
    version: dict[str, str] | None = None  # the file's version resource (ProductName, CompanyName ...)
    # Its security descriptor as far as the journal's trust needs it: the owner SID and the SIDs granted any
    # write right. None: owner Administrators, write for SYSTEM and Administrators only (a protected ACL).
    security: dict[str, Any] | None = None


#: A volume's size when the scenario does not say (bytes): room for any media the tests stage.
DEFAULT_CAPACITY = 200 * 1024**3


class FileSystem:
    def __init__(self, clock: Clock, drives: list[str]) -> None:
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        # Each volume's size: free space is size minus the bytes of its files (GetDiskFreeSpaceEx / DriveInfo).
        self.capacity: dict[str, int] = {d.rstrip(":").upper(): DEFAULT_CAPACITY for d in drives}
        # Fault disk.full (wired by Host to its faults): every write fails as on a full volume.
        self.is_full: Callable[[], bool] = lambda: False
        for drive in drives:
            root = normalize_path(drive.rstrip(":") + ":\\")
            self._entries[root.lower()] = Entry(root, True, b"", clock.now())

    def _get(self, path: str) -> Entry | None:
        return self._entries.get(normalize_path(path).lower())

    def exists(self, path: str) -> bool:
        return self._get(path) is not None

    def is_dir(self, path: str) -> bool:
        entry = self._get(path)
        return entry is not None and entry.is_dir

    def mkdir(self, path: str) -> None:
        """New-Item -ItemType Directory -Force: creates missing parents too."""
        norm = normalize_path(path)
        chain = []
        cur: str | None = norm
        while cur is not None and cur.lower() not in self._entries:
            chain.append(cur)
            cur = parent_of(cur)
        if cur is None:
            raise WindowsError_(3, f"{path} (no such drive)")
        if not self._entries[cur.lower()].is_dir:
            raise WindowsError_(183, cur)
        for item in reversed(chain):
            self._entries[item.lower()] = Entry(item, True, b"", self._clock.now())

    def write(self, path: str, data: bytes, version: dict[str, str] | None = None, mtime: float | None = None) -> None:
        """mtime: when the write happened, for a process whose writes the model runs late (setup's parts run when
        the Task Scheduler looks, stamped with the time each part was due) or several in one model instant."""
        if self.is_full():
            # WriteFile on a full volume: ERROR_DISK_FULL (112), "There is not enough space on the disk."
            raise WindowsError_(112, path)
        norm = normalize_path(path)
        parent = parent_of(norm)
        if parent is None or not self.is_dir(parent):
            # CreateFile in a missing folder: ERROR_PATH_NOT_FOUND (3).
            raise WindowsError_(3, path)
        existing = self._entries.get(norm.lower())
        if existing is not None and existing.is_dir:
            raise WindowsError_(5, f"{path} is a directory")
        grows = len(data) - (len(existing.data) if existing is not None else 0)
        if grows > 0 and grows > self.free_bytes(norm):
            # More than the volume has left: ERROR_DISK_FULL (112), "There is not enough space on the disk."
            raise WindowsError_(112, path)
        display = existing.path if existing is not None else norm
        # Overwriting a file keeps its security descriptor (so does File.Replace for the destination's DACL).
        security = existing.security if existing is not None else None
        when = self._clock.now() if mtime is None else mtime
        self._entries[norm.lower()] = Entry(display, False, bytes(data), when, version, security)

    def used_bytes(self, drive: str) -> int:
        prefix = drive.rstrip(":\\").lower() + ":\\"
        return sum(len(e.data) for k, e in self._entries.items() if k.startswith(prefix) and not e.is_dir)

    def free_bytes(self, path: str) -> int:
        """DriveInfo(root).AvailableFreeSpace of the volume that holds path."""
        drive = normalize_path(path)[0].upper()
        if drive not in self.capacity:
            raise WindowsError_(3, f"{path} (no such drive)")
        return self.capacity[drive] - self.used_bytes(drive)

    def set_free(self, drive: str, free: int) -> None:
        """Size the volume so that `free` bytes are left (a test's full disk)."""
        key = drive.rstrip(":\\").upper()
        self.capacity[key] = self.used_bytes(key) + free

    def read(self, path: str) -> bytes:
        entry = self._get(path)
        if entry is None:
            raise WindowsError_(2, path)
        if entry.is_dir:
            raise WindowsError_(5, f"{path} is a directory")
        return entry.data

    def version(self, path: str) -> dict[str, str] | None:
        entry = self._get(path)
        if entry is None:
            raise WindowsError_(2, path)
        return dict(entry.version) if entry.version else None

    def walk_files(self, path: str) -> list[str]:
        """Every file below the folder `path`, as paths relative to it, sorted (Get-ChildItem -Recurse -File)."""
        entry = self._get(path)
        if entry is None or not entry.is_dir:
            raise WindowsError_(3, path)
        prefix = entry.path.lower().rstrip("\\") + "\\"
        return sorted((e.path[len(prefix):] for low, e in self._entries.items()
                       if low.startswith(prefix) and not e.is_dir), key=str.lower)

    def move(self, source: str, target: str) -> None:
        """Directory.Move / File.Move on one volume: a rename of the entry and everything below it. The target must
        not exist (ERROR_ALREADY_EXISTS, 183) and its parent must (ERROR_PATH_NOT_FOUND, 3)."""
        src = self._get(source)
        if src is None:
            raise WindowsError_(2, source)
        dst_norm = normalize_path(target)
        if dst_norm.lower() in self._entries:
            raise WindowsError_(183, target)
        parent = parent_of(dst_norm)
        if parent is None or not self.is_dir(parent):
            raise WindowsError_(3, target)
        old = src.path.lower()
        moved = {}
        for low, e in list(self._entries.items()):
            if low == old or low.startswith(old.rstrip("\\") + "\\"):
                new_path = dst_norm + e.path[len(src.path):]
                del self._entries[low]
                moved[new_path.lower()] = Entry(new_path, e.is_dir, e.data, e.mtime, e.version, e.security)
        self._entries.update(moved)

    def listdir(self, path: str) -> list[str]:
        entry = self._get(path)
        if entry is None:
            raise WindowsError_(3, path)
        if not entry.is_dir:
            # Listing a file as a folder: ERROR_DIRECTORY (267).
            raise WindowsError_(267, path)
        prefix = entry.path.lower().rstrip("\\") + "\\"
        return sorted(
            e.path[len(prefix) :]
            for low, e in self._entries.items()
            if low.startswith(prefix) and "\\" not in low[len(prefix) :] and low != prefix
        )

    def remove(self, path: str, recurse: bool = False) -> None:
        entry = self._get(path)
        if entry is None:
            raise WindowsError_(2, path)
        low = entry.path.lower()
        if entry.is_dir:
            children = [k for k in self._entries if k.startswith(low.rstrip("\\") + "\\")]
            if children and not recurse:
                # RemoveDirectory on a non-empty folder: ERROR_DIR_NOT_EMPTY (145).
                raise WindowsError_(145, path)
            for child in children:
                del self._entries[child]
        del self._entries[low]

    def stat(self, path: str, sha1: bool = False) -> dict[str, Any]:
        entry = self._get(path)
        if entry is None:
            raise WindowsError_(2, path)
        out: dict[str, Any] = {
            "path": entry.path,
            "is_dir": entry.is_dir,
            "size": len(entry.data),
            "mtime": entry.mtime,
        }
        if sha1 and not entry.is_dir:
            out["sha1"] = hashlib.sha1(entry.data).hexdigest()
        return out

    def set_security(self, path: str, owner: str, writers: list[str]) -> None:
        """Set-Acl, reduced to what the model reads: the owner SID and the SIDs granted write access."""
        entry = self._get(path)
        if entry is None:
            raise WindowsError_(2, path)
        entry.security = {"owner": owner, "writers": list(writers)}

    def security(self, path: str) -> dict[str, Any]:
        """Get-Acl, reduced: owner and writers (the protected default when never set)."""
        entry = self._get(path)
        if entry is None:
            raise WindowsError_(2, path)
        return dict(entry.security or {"owner": ADMINISTRATORS, "writers": [SYSTEM, ADMINISTRATORS]})

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            e.path: {
                "is_dir": e.is_dir,
                "size": len(e.data),
                "sha1": None if e.is_dir else hashlib.sha1(e.data).hexdigest(),
            }
            for e in sorted(self._entries.values(), key=lambda x: x.path.lower())
        }
