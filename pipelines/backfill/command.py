"""`busque backfill` and `python -m pipelines.backfill`: arguments, and a run from the root."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import ray

from busque.cluster import join_cluster
from busque.ray_start import start_ray
from busque.runtime import Runtime
from pipelines.arguments import collection_arg, tenant_id
from pipelines.backfill.placement import NotOnACluster
from pipelines.backfill.plan import missing_folder
from pipelines.backfill.report import summary
from pipelines.backfill.run import backfill
from pipelines.backfill.watch import watch

DESCRIPTION = (
    "Backfill a legacy photo library: every file is hashed (sha256, pHash), exact duplicates "
    "are stored once with every path kept, near duplicates reported; new images are uploaded, "
    "catalogued and embedded, so the service can search them. A rerun skips what was synced; "
    "--dry-run only reports. Runs on RAY_ADDRESS, else on the Ray of a `busque serve` running "
    "on the same BUSQUE_HOME, else on a new local Ray; the same as `busque backfill` and "
    "`python -m pipelines.backfill`. On a cluster, a folder is read on this machine's node "
    "only; an s3:// library is read from every node."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", help="the library: a folder (scanned recursively) or s3://bucket/prefix"
    )
    parser.add_argument("--tenant", required=True, help="tenant name or id (ten_...)")
    parser.add_argument(
        "--create-tenant",
        action="store_true",
        help="create the --tenant (a name) if there is none by that name; else it must exist",
    )
    parser.add_argument(
        "--collection",
        type=collection_arg,
        help="collection for the media (default: media.default_collection)",
    )
    parser.add_argument("--library", help="name of this library (default: the collection)")
    parser.add_argument(
        "--dry-run", action="store_true", help="only write the report: counts, groups, bytes saved"
    )
    parser.add_argument(
        "--no-faces", action="store_true", help="do not detect faces (images and video frames)"
    )
    parser.add_argument(
        "--no-embeddings",
        action="store_true",
        help="store and catalog, embed later (reindex --recompute)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip paths with a part matching this pattern (fnmatch, e.g. '@eaDir', '*.tmp'; "
        "repeatable), besides BUSQUE_PIPELINES__BACKFILL_EXCLUDE's",
    )
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="keep watching the folder: new or changed files are processed as they appear",
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="--watch: seconds between passes"
    )


def run(runtime: Runtime, args) -> int:
    if missing_folder(args.root):
        print(f"no such folder: {args.root}", file=sys.stderr)
        return 1
    problem = join_cluster(runtime.settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    runtime.migrate()
    keys = runtime.keys
    tenant = tenant_id(keys, args.tenant)
    if tenant is None and not args.create_tenant:
        print(f"no tenant {args.tenant!r} (--create-tenant creates it)", file=sys.stderr)
        return 1
    if tenant is None:
        try:
            tenant = keys.ensure_tenant(args.tenant)
        except ValueError as exc:  # not a valid tenant name
            print(exc, file=sys.stderr)
            return 1
    if not ray.is_initialized():
        start_ray(runtime.settings)
    if args.watch:
        with contextlib.suppress(KeyboardInterrupt):
            watch(
                runtime,
                tenant,
                args.root,
                interval_s=args.interval,
                on_report=lambda r: print(summary(r), flush=True),
                collection=args.collection,
                library=args.library,
                embeddings=not args.no_embeddings,
                faces=not args.no_faces,
                progress=not args.quiet,
                exclude=args.exclude,
            )
        return 0
    try:
        report = backfill(
            runtime,
            tenant,
            args.root,
            collection=args.collection,
            library=args.library,
            dry_run=args.dry_run,
            embeddings=not args.no_embeddings,
            faces=not args.no_faces,
            progress=not args.quiet,
            exclude=args.exclude,
        )
    except NotOnACluster as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # committed batches are kept: a rerun skips them
        print("\ninterrupted; rerun to resume", file=sys.stderr)
        return 130
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    print(summary(report), file=sys.stderr if args.report is None else sys.stdout)
    if args.report is None:
        print(json.dumps(report, indent=2))
    if not args.dry_run:
        print(how_to_reach(runtime, tenant, args.collection), file=sys.stderr)
    return 0


def how_to_reach(runtime: Runtime, tenant: str, collection: str | None) -> str:
    """Where the backfilled media are and how to see them: keys see only their own tenant
    (`busque serve`'s dev key is the `default` tenant's)."""
    name = runtime.keys.tenant(tenant)["name"]
    collection = collection or runtime.settings.media.default_collection
    return (
        f"The media are in tenant {name!r} ({tenant}), collection {collection!r}. An API key "
        f"sees only its own tenant's: create one with `busque keys create --tenant {name}` and "
        f"send it as X-API-Key to browse and search them (GET /v1/media?collection={collection})."
    )
