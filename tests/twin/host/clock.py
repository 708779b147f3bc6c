"""The host's clock: model seconds since the Unix epoch. Time passes only through advance()."""

from __future__ import annotations

import datetime as _dt

# FILETIME counts 100 ns intervals since 1601-01-01 UTC; the Unix epoch is 11644473600 s later.
FILETIME_UNIX_OFFSET_S = 11_644_473_600


class Clock:
    def __init__(self, start: float) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the clock cannot go back ({seconds} s)")
        self._now += seconds

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError(f"the clock cannot go back to {when} from {self._now}")
        self._now = when


def to_filetime(unix_seconds: float) -> int:
    return int(round((unix_seconds + FILETIME_UNIX_OFFSET_S) * 10_000_000))


def to_datetime(unix_seconds: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(unix_seconds, tz=_dt.UTC)


def parse_iso(text: str) -> float:
    """'2024-05-14T08:00:00Z' -> Unix seconds (UTC). ValueError if malformed."""
    value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.timestamp()
