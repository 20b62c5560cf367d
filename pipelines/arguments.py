"""Command-line pieces the pipelines' commands share."""

from __future__ import annotations

import argparse

from busque.media.catalog import check_collection


def collection_arg(value: str) -> str:
    """check_collection as an argparse type (its message in argparse's error)."""
    try:
        return check_collection(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def tenant_id(keys, name_or_id: str) -> str | None:
    """A tenant's id from its name or id (KeyStore), or None when there is no such tenant."""
    return name_or_id if keys.tenant(name_or_id) else keys.tenant_id(name_or_id)
