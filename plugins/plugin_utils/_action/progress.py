# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a long wait speaks (docs/progress.md): every progress line names the host first and the module, stays on one
line, and says how long the wait has lasted and what it waits for. Pure text helpers; Call.say and Call.warn_now
(base.py) print through Ansible's Display, so ansible-playbook, ansible-runner and AWX show each line as it happens.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
#: The longest line a progress message takes (one console line on a wide terminal, one small AWX event).
MAX_LINE = 240


def one_line(text: Any, limit: int = MAX_LINE) -> str:
    """Text as one printable line of at most `limit` characters (runs of control characters become a space)."""
    flat = _CONTROL.sub(" ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def duration(seconds: float | None) -> str:
    """45s, 12m30s, 2h05m (an operator's reading of a wait); '?' when unknown."""
    if seconds is None or seconds < 0:
        return "?"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def size(count: float) -> str:
    """Bytes as an operator reads them: 512 B, 3.4 MiB, 1.52 GiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns at GiB


def rate(count: float, seconds: float) -> str:
    """A transfer rate (3.4 MiB/s); '?' over no time."""
    return f"{size(count / seconds)}/s" if seconds > 0 else "?"


def parse_utc(text: Any) -> float | None:
    """'2026-12-08T01:15:00Z' (the executors' UTC stamps) -> Unix seconds; None when absent or malformed."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", text):
        return None
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC).timestamp()
