"""busque's command line: `busque serve`, `busque keys ...`, `busque models ...`, `busque migrate`,
`busque reindex`, `busque backfill`.

Configuration comes from BUSQUE_* environment variables (see busque/config.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from busque.auth.keys import DEFAULT_SCOPES, SCOPES, KeyStore
from busque.cluster import refuse_embedded_on_cluster
from busque.config import Settings
from busque.grpc import SERVICER_FUNCTIONS
from busque.jobs.presets import PRESET_FILE
from busque.ray_start import note_serving_ray, serve_environment, start_ray
from busque.runtime import Runtime
from pipelines.backfill import command as backfill_command
from pipelines.reindex import command as reindex_command


def _migrate(settings: Settings) -> None:
    Runtime(settings).migrate()


def _key_store(settings: Settings) -> KeyStore:
    """The key store, on a database at the newest schema."""
    runtime = Runtime(settings)
    runtime.migrate()
    return runtime.keys


def _models(settings: Settings, args, parser: argparse.ArgumentParser) -> int:
    runtime = Runtime(settings)
    runtime.migrate()
    if args.models_command == "list":
        print(json.dumps([p.model_dump() for p in runtime.presets.all()], indent=2))
        return 0
    try:
        presets = PRESET_FILE.validate_json(args.file.read_bytes())
    except OSError as exc:
        parser.error(f"cannot read {args.file}: {exc.strerror}")
    except ValidationError as exc:
        parser.error(f"{args.file} is not a list of presets:\n{exc}")
    unknown = sorted({p.job_kind for p in presets} - {s.id for s in runtime.registry})
    if unknown:
        parser.error(f"{args.file}: no job kind {', '.join(unknown)} in this busque's catalog")
    created, updated = runtime.presets.load(presets)
    print(f"{created} presets created, {updated} updated ({settings.database.url})")
    return 0


def ensure_dev_key(settings: Settings) -> tuple[str, bool]:
    """The dev admin key: created on the first `busque serve`, kept 0600 in the key file."""
    path = settings.auth.dev_key_file
    keys = _key_store(settings)
    if path.exists():
        key = path.read_text().strip()
        if keys.verify(key) is not None:
            return key, False
    created = keys.create("default", "dev admin key", ("admin",))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(created.key + "\n")
    os.chmod(path, 0o600)
    return created.key, True


def admin_key_lines(keyfile: Path, key: str, created: bool, url: str) -> str:
    """Where the dev admin key is; the key itself only when it was just made, so the logs and
    terminals of every later start never hold it."""
    where = f"  admin key:  in {keyfile}"
    if created:
        where = f"  admin key (created now, kept in {keyfile}):\n    {key}"
    return f'{where}\n  try: curl -H "X-API-Key: $(cat {keyfile})" {url}/v1/models'


def run_serve(settings: Settings, block: bool = True, detach: bool = False) -> None:
    """Start Ray (or join RAY_ADDRESS), deploy busque, print where it is. It runs until SIGTERM
    or Ctrl-C, then takes the app down, unless `detach` leaves it running on the cluster."""
    serve_environment(settings.serve.direct_ingress, settings.serve.haproxy)
    from ray import serve

    from busque.serve.app import build_app
    from busque.serve.direct_ingress import direct_ports

    ray_context = start_ray(settings, join_serve=False)
    refuse_embedded_on_cluster(settings)  # before anything is written on this node
    _migrate(settings)
    key, created = ensure_dev_key(settings)
    http = {"host": settings.serve.host, "port": settings.serve.port}
    grpc = {}
    if settings.serve.grpc_port:
        grpc = {
            "port": settings.serve.grpc_port,
            "grpc_servicer_functions": SERVICER_FUNCTIONS,
        }
    serve.start(http_options=http, grpc_options=grpc or None)
    serve.run(build_app(settings), name=settings.serve.app_name, route_prefix="/")
    local_ray = not settings.ray_address
    if local_ray:
        note_serving_ray(settings, ray_context.address_info["gcs_address"])
    url = settings.serve.public_url
    print(f"busque is up\n  API:        {url}/v1\n  docs:       {url}/docs")
    print(f"  library:    {url}/app/ (the web app: sign in with a key)")
    print(f"  dashboard:  {dashboard_url(settings, ray_context)}")
    if settings.serve.grpc_port:
        # Ray's gRPC proxy listens on every interface whatever serve.host says.
        print(f"  gRPC:       {settings.serve.grpc_port} on all interfaces (JobService)")
    for port in direct_ports(settings.serve.app_name):
        print(f"  direct:     http://{settings.serve.host}:{port} (a Gateway replica, no proxy)")
    print(admin_key_lines(settings.auth.dev_key_file, key, created, url))
    sys.stdout.flush()
    if detach:
        print("detached: the app keeps running on the cluster (`serve shutdown` stops it)")
        return
    if not block:
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    print("shutting down (running jobs go back to the queue)")
    if local_ray:
        note_serving_ray(settings, None)
    serve.shutdown()


def dashboard_url(settings: Settings, ray_context) -> str:
    """The dashboard Ray bound (or serve.dashboard_url, e.g. behind a proxy), and how to
    authenticate to it when Ray's token auth is on."""
    url = settings.serve.dashboard_url
    if not url and ray_context.dashboard_url:
        url = f"http://{ray_context.dashboard_url}"
    if not url:
        return "none (this Ray runs without its dashboard)"
    if os.environ.get("RAY_AUTH_MODE", "token") != "disabled":
        url += " (Ray token auth: the token is in ~/.ray/auth_token)"
    return url


def _print_table(rows: list[dict]) -> None:
    for row in rows:
        created = datetime.fromtimestamp(row["created_at"], UTC).strftime("%Y-%m-%d %H:%M")
        state = "revoked" if row["revoked_at"] else "active"
        print(
            f"{row['id']}  {row['tenant']:<16} {state:<8} {created}  "
            f"{','.join(row['scopes']):<40} {row['name']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="busque",
        description="busque: AI jobs over images and media on Ray Serve. Settings come from "
        "BUSQUE_* environment variables, e.g. BUSQUE_DATABASE__URL, BUSQUE_STORAGE__BACKEND.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser(
        "serve",
        help="start the service (local Ray, or RAY_ADDRESS)",
        description="start the service (local Ray, or RAY_ADDRESS)",
    )
    p_serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p_serve.add_argument("--grpc-port", type=int, help="gRPC port, 0 to disable (default 9000)")
    p_serve.add_argument(
        "--detach",
        action="store_true",
        help="with RAY_ADDRESS: deploy and exit, leaving busque running on the cluster (without "
        "it, busque serve takes the app down when it exits)",
    )

    sub.add_parser(
        "migrate",
        help="bring the database to the newest schema",
        description="bring the database to the newest schema",
    )

    p_keys = sub.add_parser("keys", help="manage API keys", description="manage API keys")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser(
        "create", help="create a key (printed once)", description="create a key (printed once)"
    )
    p_create.add_argument("--tenant", default="default", help="tenant name (created if new)")
    p_create.add_argument("--name", default="api key", help="what the key is for")
    p_create.add_argument(
        "--scopes",
        default=",".join(DEFAULT_SCOPES),
        help=f"comma-separated, from: {', '.join(SCOPES)}",
    )
    p_create.add_argument("--json", action="store_true", help="print JSON")
    p_list = keys_sub.add_parser(
        "list",
        help="list keys (never their secrets)",
        description="list keys (never their secrets)",
    )
    p_list.add_argument("--tenant", help="only this tenant")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    p_revoke = keys_sub.add_parser(
        "revoke",
        help="revoke a key by its id (key_...)",
        description="revoke a key by its id (key_...)",
    )
    p_revoke.add_argument("key_id")

    p_models = sub.add_parser(
        "models", help="the model presets", description="the model presets (busque.jobs.presets)"
    )
    models_sub = p_models.add_subparsers(dest="models_command", required=True)
    p_load = models_sub.add_parser(
        "load",
        help="create or update presets from a JSON file (idempotent)",
        description='create or update presets from a JSON file: a list of {"id", "job_kind", '
        '"default_params"?, "inputs"?, "description"?}; presets not in the file stay',
    )
    p_load.add_argument("file", type=Path)
    models_sub.add_parser("list", help="print the presets as JSON")

    p_reindex = sub.add_parser(
        "reindex",
        help="rebuild a collection's index into a new snapshot (Ray Data)",
        description=reindex_command.DESCRIPTION,
    )
    reindex_command.add_arguments(p_reindex)

    p_backfill = sub.add_parser(
        "backfill",
        help="backfill a photo library folder: dedupe, upload, catalog, embed (Ray Data)",
        description=backfill_command.DESCRIPTION,
    )
    backfill_command.add_arguments(p_backfill)

    args = parser.parse_args(argv)
    overrides: dict = {}
    if args.command == "serve":
        serve_opts = {
            k: v
            for k, v in (("host", args.host), ("port", args.port), ("grpc_port", args.grpc_port))
            if v is not None
        }
        if serve_opts:
            base = Settings().serve.model_dump()
            base.pop("public_url")
            overrides["serve"] = base | serve_opts
    settings = Settings(**overrides)

    if args.command == "serve":
        if args.detach and not settings.ray_address:
            parser.error("--detach needs a cluster to leave busque on: set RAY_ADDRESS")
        run_serve(settings, detach=args.detach)
    elif args.command == "reindex":
        return reindex_command.run(Runtime(settings), args)
    elif args.command == "backfill":
        return backfill_command.run(Runtime(settings), args)
    elif args.command == "migrate":
        _migrate(settings)
        print(f"database at the newest schema: {settings.database.url}")
    elif args.command == "models":
        return _models(settings, args, parser)
    elif args.keys_command == "create":
        scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
        try:
            created = _key_store(settings).create(args.tenant, args.name, scopes)
        except ValueError as exc:
            parser.error(str(exc))
        if args.json:
            print(json.dumps(created.__dict__))
        else:
            print(
                f"key id:  {created.key_id}\ntenant:  {args.tenant}\nscopes:  "
                f"{','.join(created.scopes)}\nkey:     {created.key}\n(shown once: store it now)"
            )
    elif args.keys_command == "list":
        if args.tenant == "":
            parser.error("--tenant: empty tenant name (leave --tenant out to list every tenant)")
        rows = _key_store(settings).list(args.tenant)
        if args.json:
            print(json.dumps(rows))
        else:
            _print_table(rows)
    elif args.keys_command == "revoke":
        if not _key_store(settings).revoke(args.key_id):
            print(f"no active key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
