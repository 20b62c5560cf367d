"""Liveness, readiness and who-am-I."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    ok: bool
    ms: float | None = None
    error: str | None = None  # the exception's type only (its message is in the log)
    waiting: list[str] | None = None  # deployments: those still coming up, none running


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Check]


class Me(BaseModel):
    tenant_id: str
    tenant: str
    key_id: str
    scopes: list[str]
    webhook_secret: str | None  # only for keys with jobs:write
