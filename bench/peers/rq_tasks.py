"""RQ's side of the jobs benchmark: the no-op its workers import (RQ on Redis database 1)."""

from __future__ import annotations


def noop(n):
    return {"echo": n}
