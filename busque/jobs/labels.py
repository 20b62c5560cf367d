"""Job labels: a small map of strings a client sets when it creates a job (a door's customer
id, a gallery), so that it can list and follow its jobs by them without a table of its own.
Labels are the tenant's: every filter by label is also a filter by tenant."""

from __future__ import annotations

import re

MAX_LABELS = 16
MAX_VALUE = 256
KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class InvalidLabels(ValueError):
    pass


def check(labels: dict) -> dict[str, str]:
    """`labels` if they are valid, else InvalidLabels saying why."""
    if len(labels) > MAX_LABELS:
        raise InvalidLabels(f"a job may have at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(key, str) or not KEY.match(key):
            raise InvalidLabels(
                f"label key {key!r}: lower-case letters, digits, '_', '.', '-', at most 64, "
                "starting with a letter or digit"
            )
        if not isinstance(value, str) or len(value) > MAX_VALUE or "\x00" in value:
            raise InvalidLabels(f"label {key!r}: a string of at most {MAX_VALUE} characters")
    return dict(labels)


def parse_filter(selectors: list[str]) -> dict[str, str]:
    """`key=value` selectors (all must hold) as a map."""
    wanted: dict[str, str] = {}
    for selector in selectors:
        key, sep, value = selector.partition("=")
        if not sep:
            raise InvalidLabels(f"label filter {selector!r}: write key=value")
        wanted[key] = value
    return check(wanted)


def matches(labels: dict | None, wanted: dict[str, str]) -> bool:
    labels = labels or {}
    return all(labels.get(key) == value for key, value in wanted.items())
