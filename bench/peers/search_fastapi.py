"""The search service a user would write instead of busque (bench/search.py's baseline): one
FastAPI app served by uvicorn, the same EfficientNet-Lite0 and a FAISS inner-product index held
in process, loaded at startup as FastAPI's docs recommend (a lifespan handler).

    BENCH_SEARCH_PHOTOS=DIR uvicorn bench.peers.search_fastapi:app --workers 2 --port P

DIR holds the photos to index (NAME.jpg); each uvicorn worker embeds them at startup. POST
/search takes a multipart `image` and `k` and answers {"matches": [{"name", "score"}]}. It takes
busque's shortcuts where a user could (the JPEG decoded at reduced scale, busque's own model
code and weights), and skips what a one-tenant toy does not need (auth, a catalog, pHashes, a
persistent index): it is the least a server can do for the same answer.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path

import faiss
import numpy as np
import torch
from fastapi import FastAPI, Form, UploadFile

from busque.media.decode import decode_reduced
from busque.models.embedding import create_embedder

STATE: dict = {}


def embed(model, data: bytes) -> np.ndarray:
    image = decode_reduced(data, min_side=model.source_side)
    return np.asarray(model.embed_images([image]), dtype="float32")


@asynccontextmanager
async def lifespan(_app: FastAPI):
    torch.set_num_threads(int(os.environ.get("BENCH_SEARCH_THREADS", "1")))
    model = create_embedder(
        "efficientnet-lite0", device=os.environ.get("BENCH_SEARCH_DEVICE", "cpu")
    )
    model.load()
    photos = sorted(Path(os.environ["BENCH_SEARCH_PHOTOS"]).glob("*.jpg"))
    vectors = np.concatenate([embed(model, p.read_bytes()) for p in photos])
    faiss.normalize_L2(vectors)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    STATE.update(model=model, index=index, names=[p.stem for p in photos])
    yield
    STATE.clear()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True}


@app.post("/search")
def search(image: UploadFile, k: int = Form(5)) -> dict:
    # A plain `def`: FastAPI runs it on its thread pool, so requests overlap in the model.
    query = embed(STATE["model"], image.file.read())
    faiss.normalize_L2(query)
    scores, rows = STATE["index"].search(query, k)
    names = STATE["names"]
    return {
        "matches": [
            {"name": names[r], "score": float(s)}
            for s, r in zip(scores[0], rows[0], strict=True)
            if r >= 0
        ]
    }
