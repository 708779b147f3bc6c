"""Small validators of scenario data (host file and `faults:` section): each returns the value it checked or
raises ScenarioError naming the path of the bad item."""

from __future__ import annotations

from typing import Any

from .errors import ScenarioError


def expect_map(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(path, f"expected a mapping, got {type(value).__name__}")
    return value


def expect_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ScenarioError(path, f"expected a list, got {type(value).__name__}")
    return value


def expect_keys(value: dict[str, Any], allowed: tuple[str, ...], path: str, required: tuple[str, ...] = ()) -> None:
    for key in value:
        if key not in allowed:
            raise ScenarioError(f"{path}.{key}" if path else str(key), f"unknown key (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in value:
            raise ScenarioError(f"{path}.{key}" if path else key, "is required")


def expect_str(value: Any, path: str, optional: bool = False) -> str:
    if value is None and optional:
        return None  # type: ignore[return-value]
    if not isinstance(value, str) or (not value and not optional):
        raise ScenarioError(path, f"{value!r} is not a non-empty string")
    return value


def expect_one_of(value: Any, choices: tuple[str, ...], path: str) -> str:
    if value not in choices:
        raise ScenarioError(path, f"{value!r} is not one of {', '.join(choices)}")
    return value


def expect_int(value: Any, path: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(path, f"{value!r} is not an integer")
    if minimum is not None and value < minimum:
        raise ScenarioError(path, f"{value} is less than {minimum}")
    return value


def expect_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(path, f"{value!r} is not true or false")
    return value


def expect_str_list(value: Any, path: str) -> list[str]:
    items = expect_list(value, path)
    for i, item in enumerate(items):
        expect_str(item, f"{path}[{i}]")
    return items
