"""The model contract: plain Python, no Ray. Load once, then predict many times.

Serve deployments and Ray Data pipelines both wrap these classes, so online and batch results
come from the same code. A model reports progress, streamed output and artifacts through the
`JobContext` it is handed, and checks `ctx.cancelled` between steps to stop cooperatively.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Protocol

from busque.models.allocator import reuse_freed_memory


class JobCanceled(Exception):
    """Raised inside a model (by ctx.check_cancelled) when its job was canceled."""


class ModelError(Exception):
    """A model's own failure with a stable error code; retryable ones are tried again."""

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class JobContext(Protocol):
    job_id: str
    attempt: int
    tenant_id: str

    @property
    def cancelled(self) -> bool: ...

    def check_cancelled(self) -> None: ...

    def progress(self, percent: float, message: str | None = None) -> None: ...

    def output(self, chunk: Any) -> None: ...

    def artifact(self, name: str, data: bytes, content_type: str) -> dict: ...

    def read_object(self, key: str) -> bytes:
        """An object of the job's tenant (e.g. an uploaded input photo); ModelError
        `object_not_found` for a missing key or another tenant's."""


class Loadable:
    """`_load` once (lazily, thread-safe), then use many times. The image embedders and face
    analyzers are only this: their deployments and pipelines call their own methods
    (`analyze_prepared`, `analyze`), never a job's `predict`."""

    def __init__(self, **options: Any):
        self.options = options
        self._loaded = False
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if not self._loaded:
                reuse_freed_memory()  # every process that hosts a model: see allocator.py
                self._load()
                self._loaded = True

    @property
    def loaded(self) -> bool:
        return self._loaded

    def _load(self) -> None:  # an optional hook: many small models need no loading
        pass


class Model(Loadable, ABC):
    """A job model, Immich's shape: `_load` once (lazily, thread-safe), `_predict` per call."""

    def predict(self, inputs: dict[str, Any], ctx: JobContext) -> Any:
        self.load()
        return self._predict(inputs, ctx)

    @abstractmethod
    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> Any: ...
