"""The twin's host model: a Windows Configuration Manager site server with SQL Server, as pure Python.

See tests/twin/CONTRACT.md for the API and twin/host/scenario.py for the data file's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ScenarioError, Unmodelled, WindowsError_, WmiUnavailable
from .host import Counters, Host
from .scenario import read_scenario
from .sources import Share, make_iso
from .sql import media_setup_exe

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "data" / "site_server.yml"

__all__ = [
    "DEFAULT_SCENARIO",
    "Counters",
    "Host",
    "ScenarioError",
    "Unmodelled",
    "WindowsError_",
    "WmiUnavailable",
    "Share",
    "load_host",
    "make_iso",
    "media_setup_exe",
]


def load_host(source: str | Path | dict[str, Any] = DEFAULT_SCENARIO, name: str | None = None, seed: int = 0) -> Host:
    """A Host from a scenario file (YAML parsed once per content, then copied) or an in-memory dict.

    A relative path that does not exist as given is tried relative to the `tests/` folder, so
    "twin/data/site_server.yml" works from any working directory."""
    if not isinstance(source, dict):
        path = Path(source)
        if not path.is_absolute() and not path.exists():
            candidate = Path(__file__).resolve().parent.parent.parent / path
            if candidate.exists():
                path = candidate
        source = path
    data = read_scenario(source)
    return Host(name or data["host"]["computer_name"], seed, data)
