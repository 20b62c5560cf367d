"""What every busque replica builds from the settings it was bound with."""

from __future__ import annotations

import logging
import logging.handlers
import threading
import time
from functools import cached_property

from busque.auth.keys import KeyStore
from busque.config import Settings
from busque.db.engine import make_engine
from busque.jobs.store import JobStore
from busque.media.catalog import Catalog
from busque.models.registry import build_registry
from busque.storage import ObjectStore, open_object_store


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


class Runtime:
    """Lazily opened shared parts: the database, stores, the model catalog."""

    def __init__(self, settings: dict | Settings):
        self.settings = (
            settings if isinstance(settings, Settings) else Settings.model_validate(settings)
        )
        _log_like_serve()

    @cached_property
    def engine(self):
        db = self.settings.database
        return make_engine(db.url, pool_size=db.pool_size, echo=db.echo)

    @cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.engine, self.settings.jobs, self.settings.webhooks.default_events)

    @cached_property
    def keys(self) -> KeyStore:
        return KeyStore(self.engine)

    @cached_property
    def objects(self) -> ObjectStore:
        return open_object_store(self.settings.storage, self.settings.serve.public_url)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine)

    @cached_property
    def registry(self):
        return build_registry(self.settings)
