"""Typed readers for one field of a spec section, with user-facing errors.

Internal to `helm_operator.api`: `helmrelease` reads every field through these
so that a wrong type gives one clear `InvalidSpec` naming the field's path
(`spec.rollback.maxRetries`) instead of a TypeError deep in the operator.
They never echo values that may be secret (only their type).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class InvalidSpec(ValueError):
    """A HelmRelease whose spec cannot be acted on, and how to fix it.

    `message` is the user-facing text for status and events (`str(err)` is
    the same). `hint`, when set, adds detail for logs and the CLI without
    changing a message the contract fixes (`NO_CHART_SOURCE`).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def type_name(value: Any) -> str:
    """A YAML-ish name of a value's type, safe to show (never the value)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def read_map(section: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """A sub-object; absent or null reads as empty, anything else is refused."""
    value = section.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{where} must be a map, got {type_name(value)}")
    return dict(value)


def read_list(section: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """A list; absent or null reads as empty."""
    value = section.get(key)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidSpec(f"{where} must be a list, got {type_name(value)}")
    return list(value)


def read_str(section: Mapping[str, Any], key: str, where: str) -> str | None:
    """A string; absent, null or empty reads as None (empty means "default")."""
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidSpec(f"{where} must be a string, got {type_name(value)}")
    return value


def read_bool(section: Mapping[str, Any], key: str, where: str) -> bool | None:
    """A boolean, or None when unset (some defaults depend on "unset")."""
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidSpec(f"{where} must be true or false, got {type_name(value)}")
    return value


def read_int(section: Mapping[str, Any], key: str, where: str, default: int) -> int:
    """A non-negative integer (counts and seconds), `default` when unset."""
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{where} must be a whole number, got {type_name(value)}")
    if value < 0:
        raise InvalidSpec(f"{where} must be 0 or more, got {value}")
    return int(value)
