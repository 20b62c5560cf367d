"""Backfill a legacy photo library (DupMedia's) into busque: dedupe, upload, catalog, embed.

    busque backfill /photos --tenant family [--collection photos] [--dry-run]
    python -m pipelines.backfill /photos --tenant family        (e.g. under `ray job submit`)

Files: `run.py` (one pass, start to end), `plan.py` (scan and what to do), `inspect.py` and
`stages.py` (the Ray Data stages), `upload.py` (drives the upload stage), `commit.py` (a batch
into the catalog), `report.py`, `watch.py`, `command.py` (the command line).

1. Scan the folder; files whose path, size and mtime were synced before are skipped unread.
2. Inspect the rest in parallel (Ray Data tasks): sha256 while reading, and for images the pHash
   (the ingest's fast hash), size, format, EXIF capture date and camera. Unreadable, corrupt
   and unsupported files are listed in the report; the run goes on.
3. Dedupe: exact duplicates by sha256 are stored once, every path kept (library_files); a file
   whose bytes the catalog already has costs no model work and no upload. Near duplicates are
   reported as groups, never deleted: by pHash (within `index.duplicate_radius` bits), by
   embedding (cosine >= `index.near_duplicate_cosine`, among the images this run embeds) and,
   for videos, by keyframe hashes (pipelines/dedupe.py).
4. Unless --dry-run: each new image is decoded once (at the size its renditions and the models
   need) in a Ray Data actor pool holding the Embedder's and FaceAnalyzer's model classes; its
   original (content-addressed), normalised JPEG and thumbnail go to the object store, its
   embedding and faces to the catalog, whose change log makes it searchable in the running
   service. A video's poster frame is its thumbnail and embedding; its faces come from
   `faces.video_frames` frames sampled over it, each person once. Each batch is committed as it
   finishes: a killed run resumes where it stopped, with nothing duplicated and nothing missing,
   and a later run removes the renditions and thumbnails it wrote but never catalogued
   (pipelines/pending.py, once `pipelines.orphan_grace_s` old).
The report (JSON, and a summary table) gives counts, groups, failures and the bytes dedupe saved.
"""

from pipelines.backfill.report import summary
from pipelines.backfill.run import backfill
from pipelines.backfill.watch import watch

__all__ = ["backfill", "summary", "watch"]
