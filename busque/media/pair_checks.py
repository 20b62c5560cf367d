"""The pixel checks of duplicate candidate pairs (busque.media.same_picture), kept by the pair's
bytes: computed once, whatever rescans, restarts or other Matcher replicas follow."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from busque.db.engine import is_postgres, readonly
from busque.db.schema import pair_checks

ShaPair = tuple[str, str]  # the smaller first


class PairChecks:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)

    def get(self, pairs: Iterable[ShaPair], method: str) -> dict[ShaPair, float | None]:
        """The stored agreement of each of these pairs that has one (None: no verdict)."""
        pairs = list(pairs)
        found = {}
        with self.reader.connect() as conn:
            for at in range(0, len(pairs), 200):
                wanted = or_(
                    *(
                        and_(pair_checks.c.sha256_a == a, pair_checks.c.sha256_b == b)
                        for a, b in pairs[at : at + 200]
                    )
                )
                query = select(
                    pair_checks.c.sha256_a, pair_checks.c.sha256_b, pair_checks.c.agreement
                ).where(pair_checks.c.method == method, wanted)
                found |= {(a, b): agreement for a, b, agreement in conn.execute(query)}
        return found

    def put(self, verdicts: dict[ShaPair, float | None], method: str) -> None:
        """Store these verdicts; one another replica stored first is kept (it is the same)."""
        if not verdicts:
            return
        dialect = postgresql if is_postgres(self.engine) else sqlite
        now = time.time()
        rows = [
            {"sha256_a": a, "sha256_b": b, "method": method, "agreement": v, "checked_at": now}
            for (a, b), v in verdicts.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(dialect.insert(pair_checks).on_conflict_do_nothing(), rows)
