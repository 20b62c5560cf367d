"""The composition root: from Settings, the stores, the model factories and the job-kind catalog.

Ray-free, and the one home of busque's wiring. The Serve app (busque/serve/app.py, the one place
that calls `.bind()`), each replica, the pipelines' entry points, the CLI, the tests and the
benchmarks all start from a `Runtime`. Pipelines are handed one (it pickles as its settings, so a
Ray Data actor rebuilds its own parts lazily) and never import this module: the catalog below
imports their job kinds.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cached_property
from typing import Any

from busque.auth.keys import KeyStore
from busque.auth.rate_buckets import RateBuckets
from busque.config import Settings
from busque.db.engine import make_engine
from busque.db.migrate import upgrade
from busque.faces import analyze as faces_job
from busque.faces.index import FaceIndex
from busque.faces.store import FaceStore
from busque.index.live import LiveIndex, NearDuplicate
from busque.jobs.dispatcher import Route
from busque.jobs.outbox import WebhookOutbox
from busque.jobs.presets import PresetStore
from busque.jobs.store import JobStore
from busque.media import ingest as ingest_job
from busque.media.catalog import Catalog
from busque.media.collections import CollectionStore
from busque.media.duplicate_review import DuplicateReviews
from busque.media.janitor import Janitor
from busque.media.pair_checks import PairChecks
from busque.media.resolve import Resolutions
from busque.models import echo
from busque.models.embedding import ImageEmbedder, create_embedder
from busque.models.embedding import spec as image_embedding
from busque.models.faces import FaceAnalyzer, create_face_analyzer
from busque.models.faces import unavailable_reason as faces_unavailable
from busque.models.image import spec as image_generation
from busque.models.mesh import spec as shape_generation
from busque.models.registry import ModelRegistry
from busque.models.text import spec as text_generation
from busque.models.text_embedding import spec as text_embedding
from busque.storage import ObjectStore, open_object_store
from pipelines import jobs as pipeline_jobs

# Every job kind busque offers, each feature's `register(registry, settings)`, in one list.
PLUGINS: tuple[Callable[[ModelRegistry, Settings], None], ...] = (
    echo.register,
    ingest_job.register,
    faces_job.register,
    text_generation.register,
    image_embedding.register,
    text_embedding.register,
    image_generation.register,
    shape_generation.register,
    pipeline_jobs.register,
)


def build_job_kinds(settings: Settings) -> ModelRegistry:
    """The catalog: the plug-ins above, then the modules named in `settings.model_modules`."""
    registry = ModelRegistry()
    for register in PLUGINS:
        register(registry, settings)
    for module in settings.model_modules:
        importlib.import_module(module).register(registry, settings)
    return registry


class Runtime:
    """Shared parts, each built on first use from the settings."""

    def __init__(self, settings: dict | Settings):
        self.settings = (
            settings if isinstance(settings, Settings) else Settings.model_validate(settings)
        )

    def __reduce__(self):  # to a Ray worker: the settings travel, the parts are rebuilt there
        return (Runtime, (self.settings.model_dump(mode="json"),))

    def migrate(self) -> None:
        upgrade(self.settings.database.url)

    # ---- stores ----

    @cached_property
    def engine(self):
        db = self.settings.database
        return make_engine(db.url, pool_size=db.pool_size, echo=db.echo)

    @cached_property
    def jobs(self) -> JobStore:
        settings = self.settings
        return JobStore(
            self.engine, settings.jobs, settings.webhooks.default_events, settings.quotas
        )

    @cached_property
    def outbox(self) -> WebhookOutbox:
        return WebhookOutbox(self.engine)

    @cached_property
    def keys(self) -> KeyStore:
        return KeyStore(self.engine)

    @cached_property
    def presets(self) -> PresetStore:
        return PresetStore(self.engine)

    @cached_property
    def rate_buckets(self) -> RateBuckets:
        return RateBuckets(self.engine)

    @cached_property
    def objects(self) -> ObjectStore:
        self.settings.ensure_secrets()  # the signing key (a file under home by default)
        return open_object_store(self.settings.storage, self.settings.serve.public_url)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine)

    @cached_property
    def janitor(self) -> Janitor:
        return Janitor(self.engine, self.objects, self.catalog)

    @cached_property
    def resolutions(self) -> Resolutions:
        return Resolutions(self.engine, self.catalog)

    @cached_property
    def duplicate_reviews(self) -> DuplicateReviews:
        return DuplicateReviews(self.catalog, self.resolutions)

    @cached_property
    def collections(self) -> CollectionStore:
        return CollectionStore(self.engine)

    @cached_property
    def faces(self) -> FaceStore:
        return FaceStore(self.engine)

    @cached_property
    def face_index(self) -> FaceIndex:
        return FaceIndex(self.faces)

    def live_index(self, dim: int) -> LiveIndex:
        """The Matcher's index: hybrid weights, snapshots and near-duplicate thresholds from
        `index` settings."""
        cfg = self.settings.index
        return LiveIndex(
            self.catalog,
            self.objects,
            dim,
            snapshot_every=cfg.snapshot_every,
            keep_snapshots=cfg.keep_snapshots,
            index_options={
                "w_visual": cfg.w_visual,
                "w_phash": 1 - cfg.w_visual,
                "vector_options": {"kind": cfg.vector_index},
            },
            near_duplicate=NearDuplicate.from_settings(cfg),
            device=cfg.device,
            min_pixel_agreement=cfg.min_pixel_agreement,
            pair_checks=PairChecks(self.engine),
        )

    # ---- the job-kind catalog ----

    @cached_property
    def registry(self) -> ModelRegistry:
        return build_job_kinds(self.settings)

    def routes(self) -> dict[str, Route]:
        """What the dispatcher needs of the catalog: each model's deployment and time limit."""
        return {
            spec.id: Route(deployment=spec.deployment, timeout_s=spec.timeout_s)
            for spec in self.registry
        }

    # ---- model factories (each call builds a new, not yet loaded, model) ----

    def new_embedder(self) -> ImageEmbedder:
        cfg = self.settings.embedder
        options: dict[str, Any] = {"device": cfg.device}
        if cfg.backend == "clip":
            options["model_path"] = cfg.model_path
        return create_embedder(cfg.backend, **options)

    def faces_available(self) -> bool:
        cfg = self.settings.faces
        return cfg.enabled and faces_unavailable(cfg.backend) is None

    def new_face_analyzer(self) -> FaceAnalyzer:
        cfg = self.settings.faces
        return create_face_analyzer(
            cfg.backend,
            detector=cfg.detector,
            detect_side=cfg.detect_side,
            upsample=cfg.upsample,
            min_score=cfg.min_score,
            thumbnail_size=cfg.thumbnail_size,
            max_pixels=self.settings.media.max_pixels,
        )
