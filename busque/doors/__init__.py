"""Front doors: the paths, fields and codes of the five systems busque replaces
(../shared/seeds/), each a thin router over busque's own jobs, keys and storage, so that their
clients keep working when pointed at busque. Each door is one module; ROUTERS composes them."""

from busque.doors import avatarforge, busquepet, dupmedia, tcc, text_queue
from busque.doors import avatarforge_status as _avatarforge_status
from busque.jobs.store import JobStore
from busque.storage import ObjectStore

ROUTERS = (
    text_queue.router,
    avatarforge.router,
    tcc.router,
    busquepet.router,
    dupmedia.router,
)
# Paths whose body carries its own credentials (the tenant gate lets it in without a header key).
KEYLESS = dupmedia.KEYLESS


def webhook_formats(jobs: JobStore, objects: ObjectStore, url_ttl_s: int) -> dict:
    """The doors' own webhook bodies, by the `format` a door's jobs name
    (busque.jobs.deliverer.PayloadFormat)."""
    return {
        _avatarforge_status.WEBHOOK_FORMAT: _avatarforge_status.webhook_body(
            jobs, objects, url_ttl_s
        )
    }
