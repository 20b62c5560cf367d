"""DupMedia's on-demand trigger: backfill passes over a folder, again and again."""

from __future__ import annotations

import threading
from pathlib import Path

from pipelines.backfill.run import backfill


def watch(
    runtime,
    tenant: str,
    root: str | Path,
    *,
    interval_s: float = 5.0,
    stop=None,
    on_report=None,
    **options,
) -> None:
    """DupMedia's on-demand trigger: pass over the library every `interval_s` seconds; each pass
    processes only files that appeared or changed (and have not changed for a second), through
    the same steps. Runs until `stop` (a threading.Event) is set or the process is interrupted."""
    stop = stop or threading.Event()
    while not stop.is_set():
        report = backfill(runtime, tenant, root, settle_s=1.0, **options)
        if report["inspected"] and on_report is not None:
            on_report(report)
        stop.wait(interval_s)
