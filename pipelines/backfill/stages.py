"""The backfill's upload stage (a Ray Data actor pool): each new file's original, renditions,
embedding and faces, from one decode made as the ingest job makes it (busque.media.render), with
the model classes the Embedder and FaceAnalyzer deployments serve."""

from __future__ import annotations

import base64
import contextlib
import json
from collections import defaultdict
from pathlib import Path

from busque.faces.analyze import in_original_pixels
from busque.faces.video import video_faces
from busque.ids import new_id
from busque.media.decode import DecodedImage
from busque.media.normalize import CONTENT_TYPES, renditions, storage_keys
from busque.media.render import decode_original, model_input
from busque.media.sources import open_source
from busque.media.video import poster_frame, sample_frames
from busque.storage import tenant_key
from pipelines import pending


class StoreAndEmbed:
    """A map_batches callable: new images -> renditions and original in the object store, and
    (with embeddings on) the vector and labels from the Embedder's model class."""

    def __init__(
        self,
        runtime,
        tenant: str,
        spec: str,
        embeddings: bool,
        faces: bool = False,
        real: dict[str, str] | None = None,
    ):
        self.settings = runtime.settings
        self.tenant = tenant
        self.source = open_source(spec, self.settings)
        self.real = real or {}  # text path -> the file's real path (see plan.text_paths)
        self.objects = runtime.objects
        embedder = runtime.new_embedder()
        self.model_side = embedder.source_side
        self.model = embedder if embeddings else None
        if self.model is not None:
            self.model.load()
        self.face_model = None
        if faces:
            self.face_model = runtime.new_face_analyzer()
            self.face_model.load()

    def _prepare(self, local: Path, kind: str, sha256: str, fmt: str, keys: dict):
        """Store the original; (the decoded image, or a video's poster frame, and renditions),
        decoded as the ingest job decodes it (busque.media.render)."""
        if kind == "video":
            return self._video(local, sha256, keys)
        data = local.read_bytes()
        models = self.model is not None or self.face_model is not None
        prepared = decode_original(data, self.settings, self.model_side if models else None, sha256)
        if self.objects.stat(keys["original"]) is None:
            self.objects.put(keys["original"], data, CONTENT_TYPES.get(fmt))
        return prepared

    def _video(self, path: Path, sha256: str, keys: dict):
        """Store the video as it is (streamed from disk); its poster frame stands for it."""
        ext = Path(path).suffix.lower()
        keys["original"] = tenant_key(self.tenant, "originals", sha256[:2], f"{sha256}{ext}")
        if self.objects.stat(keys["original"]) is None:
            self.objects.put_file(keys["original"], Path(path), f"video/{ext.lstrip('.')}")
        media = self.settings.media
        frame = poster_frame(path)
        frame.thumbnail((media.normalized_side,) * 2)
        decoded = DecodedImage(frame, "jpeg", frame.width, frame.height, sha256, 0)
        return decoded, renditions(decoded, media.normalized_side, media.thumbnail_side)

    def _faces(self, decoded, video: Path | None, width: int) -> str:
        """Faces of the image (of a few frames sampled over a video), boxes in the original's
        pixels; JSON, thumbnails base64 (Ray Data columns are flat)."""
        if self.face_model is None:
            return "null"
        if video is None:
            (faces,) = self.face_model.analyze([decoded.image])
            found = [(None, decoded.image.width, face) for face in faces]
        else:
            cfg = self.settings.faces
            frames = sample_frames(video, cfg.video_frames, cfg.detect_side)
            frame_width = frames[0][1].width
            found = [
                (t, frame_width, face)
                for t, face in video_faces(
                    frames, self.face_model.analyze, cfg.cluster_max_distance
                )
            ]
        faces = []
        for t, seen_width, face in found:
            (row,) = in_original_pixels([face.to_dict()], width, seen_width)
            row["embedding"] = [float(x) for x in row["embedding"]]
            row["thumbnail"] = base64.b64encode(row["thumbnail"]).decode()
            faces.append({**row, "frame_s": t})
        return json.dumps(faces)

    def __call__(self, batch: dict) -> dict:
        out: dict[str, list] = defaultdict(list)
        images = []
        media_ids = [new_id("med") for _ in batch["path"]]
        all_keys = [
            storage_keys(self.tenant, media_id, str(sha256), str(fmt))
            for media_id, sha256, fmt in zip(
                media_ids, batch["sha256"], batch["format"], strict=True
            )
        ]
        journal = pending.begin(
            self.objects,
            self.tenant,
            {
                m: [k["normalized"], k["thumbnail"]]
                for m, k in zip(media_ids, all_keys, strict=True)
            },
        )
        rows = zip(
            media_ids,
            all_keys,
            batch["path"],
            batch["sha256"],
            batch["format"],
            batch["kind"],
            batch["width"],
            strict=True,
        )
        for media_id, keys, path, sha256, fmt, kind, width in rows:
            error, faces = "", "[]"
            try:
                with self.source.local(self.real.get(str(path), str(path))) as local:
                    decoded, made = self._prepare(local, kind, sha256, fmt, keys)
                    video = Path(local) if kind == "video" else None
                    # an image's faces in its upright pixels, as the ingest job maps them; a video's in
                    # the width its inspection read
                    seen = decoded.width if video is None else int(width or decoded.width)
                    faces = self._faces(decoded, video, seen)
                self.objects.put(keys["normalized"], made.normalized, "image/jpeg")
                self.objects.put(keys["thumbnail"], made.thumbnail, "image/webp")
                images.append(decoded)
            except Exception as exc:  # reported per file; the batch goes on
                error = f"{type(exc).__name__}: {exc}"
                images.append(None)
                for key in (keys["normalized"], keys["thumbnail"]):
                    with contextlib.suppress(Exception):  # else the journal's sweep removes it
                        self.objects.delete(key)  # when the second upload failed
            out["media_id"].append(media_id)
            out["keys"].append(json.dumps(keys))
            out["error"].append(error)
            out["faces"].append(faces)
            out["journal"].append(journal)
        vectors, labels = [b""] * len(images), [[]] * len(images)
        usable = [i for i, image in enumerate(images) if image is not None]
        if self.model is not None and usable:
            pixels = [model_input(images[i].image, self.model_side) for i in usable]
            found, tops = self.model.analyze(pixels, 5)
            for i, vector, top in zip(usable, found, tops, strict=True):
                vectors[i], labels[i] = vector.astype("<f4").tobytes(), top
        out["embedding"] = vectors
        out["labels"] = [json.dumps(top) for top in labels]
        out["sha256"] = list(batch["sha256"])
        return dict(out)
