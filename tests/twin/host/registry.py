"""A small registry: keys and values, case-insensitive like the real one (HKLM only by default)."""

from __future__ import annotations

from typing import Any

from .errors import Unmodelled, WindowsError_

_HIVES = {
    "hklm": "HKLM",
    "hkey_local_machine": "HKLM",
    "hkcu": "HKCU",
    "hkey_current_user": "HKCU",
}

# Pending reboot markers (docs/design.md §6, Microsoft Learn MoveFileExW); reboot clears them.
REBOOT_PENDING_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending"
REBOOT_REQUIRED_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired"
SESSION_MANAGER_KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager"
PENDING_RENAME_VALUE = "PendingFileRenameOperations"
ACTIVE_NAME_KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ActiveComputerName"
PENDING_NAME_KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName"


def normalize_key(key: str) -> str:
    """'HKLM:\\SOFTWARE\\X', 'HKEY_LOCAL_MACHINE\\SOFTWARE\\X\\' -> 'HKLM\\SOFTWARE\\X'."""
    text = key.replace("/", "\\").strip("\\")
    if "::" in text:  # PowerShell provider-qualified path
        text = text.split("::", 1)[1]
    head, _sep, rest = text.partition("\\")
    hive = _HIVES.get(head.rstrip(":").lower())
    if hive is None:
        raise Unmodelled(f"registry hive of {key!r} (only HKLM and HKCU are modelled)")
    parts = [p for p in rest.split("\\") if p]
    return "\\".join([hive, *parts])


class Registry:
    def __init__(self, keys: dict[str, dict[str, Any]] | None = None) -> None:
        # lower-case key path -> (display path, {lower value name: (display name, data)})
        self._keys: dict[str, tuple[str, dict[str, tuple[str, Any]]]] = {}
        for key, values in (keys or {}).items():
            self.create_key(key)
            for name, data in values.items():
                self.set(key, name, data)

    def create_key(self, key: str) -> None:
        path = normalize_key(key)
        parts = path.split("\\")
        for i in range(2, len(parts) + 1):
            sub = "\\".join(parts[:i])
            self._keys.setdefault(sub.lower(), (sub, {}))

    def key_exists(self, key: str) -> bool:
        return normalize_key(key).lower() in self._keys

    def get(self, key: str, value: str) -> Any:
        entry = self._keys.get(normalize_key(key).lower())
        if entry is None or value.lower() not in entry[1]:
            # RegQueryValueEx / RegOpenKeyEx: ERROR_FILE_NOT_FOUND (2)
            raise WindowsError_(2, f"{key}\\{value}")
        return entry[1][value.lower()][1]

    def values(self, key: str) -> dict[str, Any]:
        entry = self._keys.get(normalize_key(key).lower())
        if entry is None:
            raise WindowsError_(2, key)
        return dict(entry[1].values())

    def subkeys(self, key: str) -> list[str]:
        prefix = normalize_key(key).lower() + "\\"
        return sorted(
            disp.split("\\")[-1]
            for low, (disp, _values) in self._keys.items()
            if low.startswith(prefix) and "\\" not in low[len(prefix) :]
        )

    def set(self, key: str, value: str, data: Any) -> None:
        if not isinstance(data, (str, int, list, bytes)):
            raise Unmodelled(f"registry value type {type(data).__name__} at {key}\\{value}")
        self.create_key(key)
        self._keys[normalize_key(key).lower()][1][value.lower()] = (value, data)

    def delete(self, key: str, value: str | None = None) -> None:
        low = normalize_key(key).lower()
        if low not in self._keys:
            raise WindowsError_(2, key)
        if value is not None:
            if self._keys[low][1].pop(value.lower(), None) is None:
                raise WindowsError_(2, f"{key}\\{value}")
            return
        # Remove-Item -Recurse: the key and its whole subtree.
        for sub in [k for k in self._keys if k == low or k.startswith(low + "\\")]:
            del self._keys[sub]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-able: REG_BINARY data appears as a hex string."""

        def plain(data: Any) -> Any:
            return data.hex() if isinstance(data, bytes) else data

        return {disp: {n: plain(d) for n, d in vals.values()} for disp, vals in sorted(self._keys.values())}

    def reboot_pending(self) -> list[str]:
        """The pending-reboot markers that are set, by name."""
        found = []
        if self.key_exists(REBOOT_PENDING_KEY):
            found.append("RebootPending")
        if self.key_exists(REBOOT_REQUIRED_KEY):
            found.append("RebootRequired")
        try:
            if self.get(SESSION_MANAGER_KEY, PENDING_RENAME_VALUE):
                found.append(PENDING_RENAME_VALUE)
        except WindowsError_:
            pass
        if self._pending_computer_rename():
            found.append("ComputerNameChange")
        return found

    def _pending_computer_rename(self) -> bool:
        try:
            active = self.get(ACTIVE_NAME_KEY, "ComputerName")
            pending = self.get(PENDING_NAME_KEY, "ComputerName")
        except WindowsError_:
            return False
        return str(active).lower() != str(pending).lower()

    def clear_reboot_markers(self) -> None:
        """What a restart does: CBS and Windows Update drop their keys, Session Manager performs the
        pending renames and deletes the value, and the pending computer name becomes active."""
        for key in (REBOOT_PENDING_KEY, REBOOT_REQUIRED_KEY):
            if self.key_exists(key):
                self.delete(key)
        if self.key_exists(SESSION_MANAGER_KEY):
            entry = self._keys[normalize_key(SESSION_MANAGER_KEY).lower()][1]
            entry.pop(PENDING_RENAME_VALUE.lower(), None)
        if self._pending_computer_rename():
            self.set(ACTIVE_NAME_KEY, "ComputerName", self.get(PENDING_NAME_KEY, "ComputerName"))
