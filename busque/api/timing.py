"""Stage durations of one request, sent back as a W3C `Server-Timing` header: browsers' dev
tools show it, and bench/search.py reads it to split a query's latency by stage."""

from __future__ import annotations

import time


class ServerTiming:
    def __init__(self) -> None:
        self.started = self._last = time.perf_counter()
        self.stages: list[tuple[str, float, str | None]] = []

    def mark(self, stage: str) -> None:
        """Close `stage`: the time since the previous mark (or the start)."""
        now = time.perf_counter()
        self.stages.append((stage, (now - self._last) * 1000, None))
        self._last = now

    def add(self, stage: str, ms: float, description: str | None = None) -> None:
        """A stage timed elsewhere (e.g. inside a deployment), beside the marked ones."""
        self.stages.append((stage, ms, description))

    def total_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def header(self) -> str:
        parts = [
            f"{name};dur={ms:.2f}" + (f';desc="{desc}"' if desc else "")
            for name, ms, desc in self.stages
        ]
        return ", ".join([*parts, f"total;dur={self.total_ms():.2f}"])


def parse_server_timing(value: str) -> dict[str, float]:
    """{stage: ms} from a Server-Timing header."""
    stages = {}
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "dur":
                stages[name] = float(number)
    return stages
