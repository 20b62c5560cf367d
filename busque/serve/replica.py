"""What every busque replica does first: log where Serve logs, and open the composition root."""

from __future__ import annotations

import logging
import logging.handlers
import threading
import time

from busque.cluster import check_replica
from busque.config import Settings
from busque.runtime import Runtime


def replica_runtime(settings: dict | Settings) -> Runtime:
    """The Runtime of the settings this replica was bound with, its logs set up like Serve's,
    once this node is known to run busque correctly (busque.cluster.check_replica)."""
    _log_like_serve()
    runtime = Runtime(settings)
    check_replica(runtime.settings)
    return runtime


def _log_like_serve() -> None:
    """Inside a replica, send busque's logs where Serve sends its own: the replica's log file,
    as JSON lines with the replica's context (and job_id where a log call passes it)."""
    busque = logging.getLogger("busque")
    busque.setLevel(logging.INFO)
    serve_handlers = logging.getLogger("ray.serve").handlers
    if serve_handlers:
        busque.handlers = list(serve_handlers)
        busque.propagate = False
    buffers = [h for h in serve_handlers if isinstance(h, logging.handlers.MemoryHandler)]
    if buffers:  # Serve's throughput preset buffers records: write them out every second
        threading.Thread(target=_flush_every_second, args=(buffers,), daemon=True).start()


def _flush_every_second(buffers: list[logging.Handler]) -> None:
    while True:
        time.sleep(1.0)
        for handler in buffers:
            handler.flush()
