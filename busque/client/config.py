"""Where the client finds busque and its key: explicit arguments, else the environment
(`BUSQUE_URL`, `BUSQUE_API_KEY`), else the dev admin key file a local `busque serve` writes
(`$BUSQUE_HOME/admin.key`, or `.busque/admin.key` in this folder or one above it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
KEY_FILE = Path(".busque") / "admin.key"


@dataclass(frozen=True)
class Config:
    base_url: str
    api_key: str | None

    def __repr__(self) -> str:  # never print the key
        return f"Config(base_url={self.base_url!r}, api_key={'***' if self.api_key else None})"


def key_file(start: Path | None = None) -> Path | None:
    """The dev admin key file: $BUSQUE_AUTH__DEV_KEY_FILE or $BUSQUE_HOME/admin.key (as the
    server names it), else `.busque/admin.key` in `start` (the working directory) or the
    nearest folder above it that has one."""
    if named := os.environ.get("BUSQUE_AUTH__DEV_KEY_FILE"):
        path = Path(named).expanduser()
        return path if path.is_file() else None
    if home := os.environ.get("BUSQUE_HOME"):
        path = Path(home).expanduser() / "admin.key"
        return path if path.is_file() else None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / KEY_FILE).is_file():
            return folder / KEY_FILE
    return None


def resolve(base_url: str | None = None, api_key: str | None = None) -> Config:
    url = base_url or os.environ.get("BUSQUE_URL") or DEFAULT_URL
    key = api_key or os.environ.get("BUSQUE_API_KEY")
    if not key and (path := key_file()) is not None:
        key = path.read_text().strip() or None
    return Config(url.rstrip("/"), key)
