"""Rebuild a collection's hybrid index from the catalog and publish it as a new snapshot
(`build.py`), recomputing embeddings in a Ray Data actor pool when asked (`embed.py`); run by
`busque reindex`, `python -m pipelines.reindex` (`command.py`) and the `reindex` job."""

from pipelines.reindex.build import reindex

__all__ = ["reindex"]
