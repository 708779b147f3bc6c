"""Errors of the PowerShell contract checks.
"""

from __future__ import annotations

from typing import Any


class SpecError(Exception):
    """The spec cannot be read statically (or the docs cannot be read)."""


class ArgumentError(Exception):
    """Ansible.Basic refused the arguments; `msg` is its message, `result` the JSON it would print."""

    def __init__(self, msg: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result if result is not None else {"changed": False, "failed": True, "msg": msg}


class CheckModeSkipped(Exception):
    """Check mode on a module whose spec has no supports_check_mode: Ansible.Basic exits with this result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["msg"])
        self.result = result
