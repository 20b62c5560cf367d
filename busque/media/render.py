"""The one decode of an original every ingest path works from, and the one input the embedder
sees. The online ingest job, the backfill and a reindex that recomputes embeddings all call
these, so the same photo gets the same pHash, vector and faces whichever way it came in
(tests/test_ingest_paths.py holds them to it).

The decode is fixed by the settings alone: JPEGs decode at the libjpeg scale that keeps what the
renditions, the embedder and (when faces are on) the face detector need, whether or not a given
collection analyses faces. The embedder's input is that image box-reduced to about the model's
source side: no second decode.
"""

from __future__ import annotations

from PIL import Image

from busque.config import Settings
from busque.media.decode import DecodedImage
from busque.media.normalize import Renditions, decode_for_renditions, prepare


def analysis_side(settings: Settings, model_side: int) -> int:
    """The long side the decoded image keeps for the models (where the original has it)."""
    faces = settings.faces.detect_side if settings.faces.enabled else 0
    return max(model_side, faces)


def decode_original(
    data: bytes, settings: Settings, model_side: int | None, sha256: str | None = None
) -> tuple[DecodedImage, Renditions]:
    """An original's bytes -> (the decoded upright RGB image, its renditions). MediaError for
    bytes that are not a usable image. `model_side` None: no model looks at the image (a
    backfill without embeddings and faces), so only what the renditions need is decoded; the
    thumbnail may then differ in resampling, never the vectors (reindex --recompute decodes the
    original again)."""
    return prepare(data, **_decode_options(settings, model_side), sha256=sha256)


def decode_for_model(data: bytes, settings: Settings, model_side: int) -> DecodedImage:
    """The same decode as `decode_original`, without making the renditions (a reindex that
    recomputes embeddings needs the pixels only)."""
    decoded, _ = decode_for_renditions(data, **_decode_options(settings, model_side))
    return decoded


def _decode_options(settings: Settings, model_side: int | None) -> dict:
    media = settings.media
    return {
        "max_pixels": media.max_pixels,
        "max_side": media.normalized_side,
        "thumb_side": media.thumbnail_side,
        "analysis_side": None if model_side is None else analysis_side(settings, model_side),
    }


def model_input(image: Image.Image, model_side: int) -> Image.Image:
    """The embedder's pixels: the decoded image box-reduced to about the model's source side
    (the model resizes the rest of the way)."""
    factor = max(image.size) // model_side
    return image.reduce(factor) if factor >= 2 else image
