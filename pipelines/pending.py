"""Journals of what a backfill writes to the object store ahead of its catalog transaction.

A backfill uploads each new image's renditions (in its Ray Data actors) and faces' thumbnails
(in the driver) before the transaction that catalogs them. A run killed in between would
leave those objects behind, unreferenced, and its resume would store the same images again
under new media ids. So every batch first writes a journal naming the objects it is about to
write, by media id; a finished run deletes its journals, and the next run sweeps the journals
of runs that died: an object whose media id never reached the catalog is deleted.

Originals are left out: they are content-addressed and may already be shared with media that
an ingest stores meanwhile; a resume reuses an original it finds.
"""

from __future__ import annotations

import json
import logging
import time

from busque.ids import new_id
from busque.media.catalog import Catalog
from busque.storage import InvalidKey, ObjectNotFound, ObjectStore, tenant_key, validate_key

logger = logging.getLogger("busque.pipelines")

PREFIX = "backfill-pending"


def begin(objects: ObjectStore, tenant: str, keys_by_media: dict[str, list[str]]) -> str:
    """Journal the objects about to be written, before writing any; returns the journal's key."""
    key = tenant_key(tenant, PREFIX, f"{new_id('pend')}.json")
    body = {"written_at": time.time(), "media": keys_by_media}
    objects.put(key, json.dumps(body).encode(), "application/json")
    return key


def finish(objects: ObjectStore, journal_keys) -> None:
    """The journals' objects are catalogued (or were removed): forget the journals."""
    for key in journal_keys:
        objects.delete(key)


def sweep(objects: ObjectStore, catalog: Catalog, tenant: str, older_than_s: float) -> int:
    """Remove what dead runs wrote and never catalogued: for each journal older than
    `older_than_s` (younger ones may belong to a run still going), the objects of its media ids
    that have no catalog row, then the journal. Returns the number of objects removed."""
    removed = 0
    cutoff = time.time() - older_than_s
    for info in list(objects.list(tenant_key(tenant, PREFIX) + "/")):
        try:
            body = json.loads(objects.get(info.key))
        except ObjectNotFound:
            continue  # its run finished meanwhile
        except ValueError:
            logger.warning("removing unreadable backfill journal %s", info.key)
            objects.delete(info.key)
            continue
        if body.get("written_at", 0) > cutoff:
            continue
        keys_by_media = body.get("media", {})
        stored = catalog.existing(tenant, list(keys_by_media))
        for media_id, keys in keys_by_media.items():
            if media_id in stored:
                continue
            for key in keys:
                try:
                    objects.delete(validate_key(key, tenant=tenant))
                    removed += 1
                except InvalidKey:
                    logger.warning("journal %s names a key outside the tenant: %r", info.key, key)
        objects.delete(info.key)
    if removed:
        logger.info("removed %d objects a killed backfill left uncatalogued", removed)
    return removed
