"""The reindex's Ray Data stage: stored originals -> embeddings and labels, decoded and reduced
exactly as the ingest job does (busque.media.render), with the Embedder's model class; and a
photo's turns' and mirrors' pHashes as ingest computes them (rows catalogued before busque
kept them have none, so their rotated copies were not found)."""

from __future__ import annotations

import json

import numpy as np

from busque.media.decode import decode_image
from busque.media.normalize import EXTENSIONS
from busque.media.phash import phash_and_variants
from busque.media.render import decode_for_model, model_input

IMAGE_EXTENSIONS = frozenset(EXTENSIONS.values())


class EmbedStored:
    """A map_batches callable (an actor pool: the model loads once per actor)."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.model = runtime.new_embedder()
        self.model.load()

    def _pixels(self, original_key: str, normalized_key: str) -> tuple:
        """The model's input, and the turns' pHashes (None for a video)."""
        side = self.model.source_side
        settings = self.runtime.settings
        if original_key[original_key.rfind(".") :].lower() in IMAGE_EXTENSIONS:
            data = self.runtime.objects.get(original_key)
            decoded = decode_for_model(data, settings, side)
            _, variants = phash_and_variants(data, max_pixels=settings.media.max_pixels)
        else:  # a video: its poster frame is its normalised rendition
            data = self.runtime.objects.get(normalized_key)
            decoded = decode_image(data, max_pixels=settings.media.max_pixels)
            variants = None
        return model_input(decoded.image, side), variants

    def __call__(self, batch: dict) -> dict:
        read = [
            self._pixels(str(original), str(normalized))
            for original, normalized in zip(
                batch["original_key"], batch["normalized_key"], strict=True
            )
        ]
        vectors, labels = self.model.analyze([pixels for pixels, _ in read], 5)
        return {
            "id": batch["id"],
            "embedding": [np.asarray(v, dtype="<f4").tobytes() for v in vectors],
            "labels": [json.dumps(top) for top in labels],
            "phash_variants": [variants or b"" for _, variants in read],
        }
