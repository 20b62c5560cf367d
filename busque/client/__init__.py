"""busque's Python client: `Client` (blocking) and `AsyncClient` (asyncio) for busque's API.

    from busque.client import Client

    with Client() as busque:  # BUSQUE_URL, BUSQUE_API_KEY (or .busque/admin.key)
        job = busque.run("echo", {"hello": "world"})
        for event in busque.job_events(job.id):
            print(event.type, event.data)

It imports nothing else of busque (only httpx), so it installs on any machine. Chat and
embeddings speak OpenAI's API: `busque.openai()` is an `openai.OpenAI` client for them.
"""

from busque.client.aio import AsyncClient, AsyncEvents
from busque.client.config import Config, resolve
from busque.client.errors import (
    BadRequest,
    BusqueError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    JobCanceled,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    WaitTimeout,
    WebhookVerificationError,
)
from busque.client.sync import Client, Events
from busque.client.transport import RetryPolicy
from busque.client.types import (
    Account,
    Artifact,
    Collection,
    DuplicateGroup,
    DuplicatePair,
    Duplicates,
    Event,
    Face,
    FaceSearchResult,
    FoundFace,
    Ingested,
    Job,
    Match,
    Media,
    ModelInfo,
    Page,
    Person,
    PersonMatch,
    Resolution,
    ResolvedGroup,
    SearchResult,
    Upload,
)
from busque.client.webhooks import verify_webhook

__all__ = [
    "Account",
    "Artifact",
    "AsyncClient",
    "AsyncEvents",
    "BadRequest",
    "BusqueError",
    "Client",
    "Collection",
    "Config",
    "Conflict",
    "ConnectionFailed",
    "DuplicateGroup",
    "DuplicatePair",
    "Duplicates",
    "Event",
    "Events",
    "Face",
    "FaceSearchResult",
    "Forbidden",
    "FoundFace",
    "Ingested",
    "InvalidRequest",
    "Job",
    "JobCanceled",
    "JobFailed",
    "Match",
    "Media",
    "ModelInfo",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Person",
    "PersonMatch",
    "RateLimited",
    "Resolution",
    "ResolvedGroup",
    "RetryPolicy",
    "SearchResult",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "Upload",
    "WaitTimeout",
    "WebhookVerificationError",
    "resolve",
    "verify_webhook",
]
