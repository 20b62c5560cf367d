"""`busque reindex` and `python -m pipelines.reindex`: arguments, and a run from the root."""

from __future__ import annotations

import argparse
import json
import sys

from busque.cluster import join_cluster
from busque.models.base import ModelError
from busque.ray_start import start_ray
from busque.runtime import Runtime
from pipelines.arguments import collection_arg, tenant_id
from pipelines.reindex.build import reindex

DESCRIPTION = (
    "Rebuild a collection's index from the catalog (stored embeddings, or --recompute them with "
    "the configured embedder) and publish it as a new snapshot; serving Matchers swap it in "
    "without a failed query. Runs on RAY_ADDRESS, else on the Ray of a `busque serve` running on "
    "the same BUSQUE_HOME, else on a new local Ray; the same as `busque reindex`, "
    "`python -m pipelines.reindex` and the `reindex` job. Settings come from BUSQUE_* variables "
    "(the same as the service's)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True, help="tenant name or id (ten_...)")
    parser.add_argument("--collection", required=True, type=collection_arg, help="collection name")
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="recompute every embedding with the configured embedder (a new or updated "
        "model) instead of using the stored ones",
    )


def run(runtime: Runtime, args) -> int:
    import ray

    problem = join_cluster(runtime.settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    runtime.migrate()
    tenant = tenant_id(runtime.keys, args.tenant)
    if tenant is None:
        print(f"no tenant {args.tenant!r}", file=sys.stderr)
        return 1
    if not ray.is_initialized():
        start_ray(runtime.settings)
    try:
        result = reindex(
            runtime,
            tenant,
            args.collection,
            recompute=args.recompute,
            progress=lambda percent, message: print(f"[{percent:5.1f}%] {message}", flush=True),
        )
    except ModelError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
