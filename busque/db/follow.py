"""Following a table by its autoincrement id while rows may commit out of order.

On PostgreSQL a transaction holding a smaller id can commit after a larger id is already
visible. A reader that only asks for `id > last` would skip it for good, so the ids it jumps over
are remembered and asked for again, for `gap_s` seconds (longer than any write transaction).
"""

from __future__ import annotations

import time
from collections.abc import Iterable


class IdFollower:
    def __init__(self, last_id: int, missing: Iterable[int] = (), gap_s: float = 5.0):
        self.last_id = last_id
        self.gap_s = gap_s
        until = time.monotonic() + gap_s
        self.gaps: dict[int, float] = dict.fromkeys(missing, until)

    def to_recheck(self) -> list[int]:
        """The skipped ids still worth asking for (with `id > last_id`)."""
        now = time.monotonic()
        self.gaps = {i: until for i, until in self.gaps.items() if until > now}
        return list(self.gaps)

    def saw(self, row_id: int) -> None:
        """Record a row read, in id order."""
        if row_id > self.last_id:
            until = time.monotonic() + self.gap_s
            for missing in range(self.last_id + 1, row_id):
                self.gaps[missing] = until
            self.last_id = row_id
        else:
            self.gaps.pop(row_id, None)
