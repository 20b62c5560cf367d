"""What the upload stage of one backfill pass shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from busque.media.library import LibraryStore

Runtime = Any  # busque.runtime.Runtime, handed in (pipelines never import the root)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Run:
    """What the upload stage of one backfill shares."""

    runtime: Runtime
    store: LibraryStore
    tenant: str
    collection: str
    library: str
    by_path: dict
    spec: str
    embeddings: bool
    faces: bool
    progress: bool
    real: dict[str, str] = field(default_factory=dict)  # see plan.text_paths
    readers: dict = field(default_factory=dict)  # where file-reading stages run: see placement
    # (stage, done, total) after each catalogued batch: see run.backfill's on_progress
    on_progress: Progress = field(default=lambda stage, done, total: None)
