"""Search indexes: pHash (Hamming), vectors (FAISS) and the hybrid of both, with snapshots."""

from .hybrid import HybridIndex, Match
from .phash_index import PhashIndex
from .vector_index import VectorIndex

__all__ = ["HybridIndex", "Match", "PhashIndex", "VectorIndex"]
