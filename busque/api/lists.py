"""A page of a list, the same way for every list route: `{object: "list", data, next_cursor}`,
a malformed cursor a 400."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from busque.api.errors import ApiError

Rows = tuple[list[dict], str | None]


async def page_of(fetch: Callable[..., Rows], view: Callable[[dict], dict], **query: Any) -> dict:
    """`fetch(**query)` (a store's keyset page: rows and the next cursor) shown with `view`."""
    try:
        rows, next_cursor = await asyncio.to_thread(partial(fetch, **query))
    except ValueError as exc:  # the store's word for a cursor it did not write
        raise ApiError(400, "invalid_cursor", str(exc)) from None
    data = await asyncio.to_thread(lambda: [view(row) for row in rows])
    return {"object": "list", "data": data, "next_cursor": next_cursor}
