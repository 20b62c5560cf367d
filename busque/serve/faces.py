"""The FaceAnalyzer deployment: detect, align, embed and thumbnail faces (busque.models.faces).

It autoscales to zero when idle (DupMedia stopped its face process after 10 idle minutes): the
first call after that waits for a replica to start instead of failing. Ingest reaches it by
object key, so a 12 MP original travels from the object store to this replica, not through Ray.
"""

from __future__ import annotations

import asyncio

from ray import serve

from busque.serve.replica import replica_runtime


@serve.deployment(name="FaceAnalyzer")
class FaceAnalyzer:
    def __init__(self, settings: dict):
        self.runtime = replica_runtime(settings)
        self.model = self.runtime.new_face_analyzer()
        self.model.load()

    async def analyze_key(self, key: str) -> list[dict]:
        data = await asyncio.to_thread(self.runtime.objects.get, key)
        return await self.analyze(data)

    async def analyze(self, data) -> list[dict]:
        """Encoded image bytes, or a decoded Pillow image (the ingest job's: boxes then in its
        pixels) -> [{box, score, embedding, thumbnail (JPEG), landmarks}].
        Bad image data raises busque.media.decode's MediaError (a 4xx for an API)."""
        (faces,) = await asyncio.to_thread(self.model.analyze, [data])
        return [face.to_dict() for face in faces]

    def info(self) -> dict:
        return self.model.describe()
