"""`busque keys ...`, `busque migrate` and the dev key, on SQLite under a temporary BUSQUE_HOME.
The commands run as subprocesses, as a user would run them. No Ray here."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from busque.auth.keys import KeyStore
from busque.cli import ensure_dev_key
from busque.config import Settings
from busque.db.engine import make_engine
from busque.db.migrate import current_revision, head_revision


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def cli(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUSQUE_")}
    env["BUSQUE_HOME"] = str(home)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "busque.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_migrate(cli, home):
    out = cli("migrate").stdout
    assert "newest schema" in out and str(home / "busque.db") in out
    assert current_revision(f"sqlite:///{home / 'busque.db'}") == head_revision()
    cli("migrate")  # again: nothing to do
    assert current_revision(f"sqlite:///{home / 'busque.db'}") == head_revision()


def test_keys_create_list_revoke(cli, home):
    created = json.loads(
        cli("keys", "create", "--tenant", "acme", "--scopes", "jobs:read", "--json").stdout
    )
    assert created["key"].startswith("bq_")
    assert created["key_id"].startswith("key_")
    assert created["scopes"] == ["jobs:read"]
    secret = created["key"].rsplit("_", 1)[1]

    keys = KeyStore(make_engine(f"sqlite:///{home / 'busque.db'}"))
    try:
        principal = keys.verify(created["key"])
        assert principal is not None and principal.scopes == {"jobs:read"}
        assert principal.tenant_id == created["tenant_id"]

        listed = cli("keys", "list").stdout
        assert created["key_id"] in listed and "acme" in listed and "active" in listed
        assert secret not in listed and created["key"] not in listed
        rows = json.loads(cli("keys", "list", "--json").stdout)
        assert [(r["id"], r["tenant"], r["scopes"]) for r in rows] == [
            (created["key_id"], "acme", ["jobs:read"])
        ]
        assert secret not in json.dumps(rows)
        assert json.loads(cli("keys", "list", "--tenant", "other", "--json").stdout) == []

        revoked = cli("keys", "revoke", created["key_id"])
        assert created["key_id"] in revoked.stdout
        assert keys.verify(created["key"]) is None
        assert "revoked" in cli("keys", "list").stdout

        again = cli("keys", "revoke", created["key_id"], check=False)
        assert again.returncode == 1
        assert "no active key" in again.stderr
        unknown = cli("keys", "revoke", "key_000000000000", check=False)
        assert unknown.returncode == 1
    finally:
        keys.engine.dispose()


def test_keys_create_plain_output_shows_the_key_once(cli):
    out = cli("keys", "create", "--tenant", "acme", "--name", "ci").stdout
    assert "key id:" in out and "bq_" in out and "shown once" in out
    assert "jobs:read,jobs:write,objects:read,objects:write" in out  # the default scopes


def test_keys_create_with_a_bad_scope_fails(cli):
    result = cli(
        "keys", "create", "--tenant", "acme", "--scopes", "jobs:read,jobs:nuke", check=False
    )
    assert result.returncode != 0
    assert "unknown scopes" in result.stderr and "jobs:nuke" in result.stderr
    assert json.loads(cli("keys", "list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "migrate"),
        (("migrate",), "newest schema"),
        (("keys",), "revoke"),
        (("keys", "create"), "--scopes"),
        (("keys", "list"), "never their secrets"),
        (("keys", "revoke"), "key_id"),
        (("serve",), "--grpc-port"),
    ],
)
def test_help(cli, home, args, expected):
    result = cli(*args, "--help")
    assert result.stdout.startswith("usage: busque")
    assert expected in result.stdout
    assert not home.exists()  # help touches nothing


def test_no_command_is_an_error(cli):
    result = cli(check=False)
    assert result.returncode == 2 and "required" in result.stderr


def test_ensure_dev_key(home, monkeypatch):
    for name in list(os.environ):
        if name.startswith("BUSQUE_"):
            monkeypatch.delenv(name)
    settings = Settings(home=home)
    key, created = ensure_dev_key(settings)
    assert created
    path = settings.auth.dev_key_file
    assert path == home / "admin.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key

    again, created_again = ensure_dev_key(settings)
    assert (again, created_again) == (key, False)

    keys = KeyStore(make_engine(settings.database.url))
    try:
        principal = keys.verify(key)
        assert principal is not None and principal.allows("admin")
        # A revoked (or foreign) key in the file is replaced by a new one.
        keys.revoke(principal.key_id)
        replaced, created_new = ensure_dev_key(settings)
        assert created_new and replaced != key
        assert keys.verify(replaced) is not None
        assert path.read_text().strip() == replaced
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        keys.engine.dispose()


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_")}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_busque_serve_prints_the_admin_key_only_when_it_makes_it(tmp_path):
    from busque.cli import admin_key_lines

    keyfile = tmp_path / "admin.key"
    first = admin_key_lines(keyfile, "bq_secret_key", True, "http://x")
    assert "bq_secret_key" in first and str(keyfile) in first
    later = admin_key_lines(keyfile, "bq_secret_key", False, "http://x")
    assert "bq_secret_key" not in later and f"$(cat {keyfile})" in later


def test_serve_environment_makes_the_drivers_handles_use_grpc():
    """The driver builds the app, and its handles carry the driver's defaults: set before
    ray.serve is imported, the throughput preset's gRPC between deployments reaches them."""
    result = _python(
        "from busque.ray_start import serve_environment\n"
        "serve_environment()\n"
        "from ray.serve._private.handle_options import DynamicHandleOptions\n"
        "print(DynamicHandleOptions()._by_reference)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_serve_environment_after_ray_serve_is_imported_is_an_error():
    result = _python(
        "import ray.serve\nfrom busque.ray_start import serve_environment\nserve_environment()\n"
    )
    assert result.returncode != 0
    assert "must run before ray.serve is imported" in result.stderr


def test_serve_environment_turns_on_direct_ingress_unless_the_environment_says_otherwise():
    code = (
        "from busque.ray_start import serve_environment\n"
        "serve_environment(direct_ingress=True)\n"
        "from ray.serve._private import constants\n"
        "print(constants.RAY_SERVE_ENABLE_DIRECT_INGRESS)\n"
    )
    assert _python(code).stdout.strip() == "True"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_")}
    env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("keys", "create", "--scopes", ""), "no scopes given"),
        (("keys", "create", "--scopes", ","), "no scopes given"),
        (("keys", "create", "--tenant", ""), "cannot be empty"),
        (("keys", "create", "--tenant", "a\nb"), "control characters"),
        (("keys", "create", "--tenant", "x" * 5000), "at most 100 characters"),
        (("keys", "create", "--tenant", "ten_0193ab"), "cannot start with 'ten_'"),
        (("keys", "list", "--tenant", ""), "empty tenant name"),
    ],
)
def test_keys_refuse_empty_scopes_and_bad_tenant_names(cli, args, expected):
    result = cli(*args, check=False)
    assert result.returncode == 2 and expected in result.stderr
    assert json.loads(cli("keys", "list", "--json").stdout) == []


def test_a_tenant_named_like_an_id_cannot_be_created(cli, home):
    created = json.loads(cli("keys", "create", "--tenant", "acme", "--json").stdout)
    result = cli("keys", "create", "--tenant", created["tenant_id"], check=False)
    assert result.returncode == 2 and "tenant ids do" in result.stderr
    assert [r["tenant"] for r in json.loads(cli("keys", "list", "--json").stdout)] == ["acme"]


@pytest.mark.parametrize(
    "args",
    [
        ("backfill", ".", "--tenant", "acme", "--collection", "../x"),
        ("reindex", "--tenant", "acme", "--collection", ".."),
    ],
)
def test_a_bad_collection_is_refused_before_anything_runs(cli, home, args):
    result = cli(*args, check=False)
    assert result.returncode == 2
    assert "argument --collection: invalid collection name" in result.stderr
    assert not home.exists()  # refused before the database is touched


def test_backfill_refuses_a_missing_folder_and_an_unknown_tenant(cli, home, tmp_path):
    cli("keys", "create", "--tenant", "acme")
    (tmp_path / "file.jpg").write_bytes(b"")
    for root in (tmp_path / "nowhere", tmp_path / "file.jpg"):
        result = cli("backfill", str(root), "--tenant", "acme", check=False)
        assert result.returncode == 1 and f"no such folder: {root}" in result.stderr
    result = cli("backfill", str(tmp_path), "--tenant", "nobody", check=False)
    assert result.returncode == 1
    assert "no tenant 'nobody'" in result.stderr and "--create-tenant" in result.stderr
    keys = KeyStore(make_engine(f"sqlite:///{home / 'busque.db'}"))
    try:
        assert keys.tenant_id("nobody") is None and keys.tenant_id("acme")
    finally:
        keys.engine.dispose()
    assert "--create-tenant" in cli("backfill", "--help").stdout
