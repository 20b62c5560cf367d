"""Front doors: the paths, fields and codes of the five systems busque replaces
(../shared/seeds/), each a thin router over busque's own jobs, keys and storage, so that their
clients keep working when pointed at busque. Each door is one module; ROUTERS composes them."""

from busque.doors import busquepet, dupmedia, tcc, text_queue

ROUTERS = (text_queue.router, tcc.router, busquepet.router, dupmedia.router)
# Paths whose body carries its own credentials (the tenant gate lets it in without a header key).
KEYLESS = dupmedia.KEYLESS
