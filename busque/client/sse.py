"""Server-sent events, shared by the sync and async clients: a parser of the text/event-stream
format, and the state of a stream that resumes where it broke (Last-Event-ID)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from busque.client.transport import Call, RetryPolicy
from busque.client.types import Event


@dataclass
class SseParser:
    """Feed it lines (without their line ending); it gives back each complete message as
    (id, event, data)."""

    _id: str | None = None
    _event: str | None = None
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str | None, str | None, str] | None:
        if line == "":
            if not self._data and self._event is None:
                # Only an id (busque's tenant stream opens so): where to resume, no event.
                message = None if self._id is None else (self._id, None, "")
                self._id = None
                return message
            message = (self._id, self._event, "\n".join(self._data))
            self._id, self._event, self._data = None, None, []
            return message
        if line.startswith(":"):
            return None  # a comment: busque's keepalives
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


@dataclass
class EventStream:
    """What a stream of events has seen, so that a reconnection asks for what follows it: the
    `Last-Event-ID` header of each new request is the id of the last event handed out, so
    nothing is lost and nothing repeated. A job's stream ends after the job's terminal status
    event; the tenant's never ends by itself.

    Iterate the client's `job_events()` / `events()` (sync or async), not this."""

    path: str
    params: dict | list | None = None
    stop_at_terminal: bool = True
    last_event_id: int | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_retries=8))
    read_timeout_s: float = 60.0
    reconnects: int = 0  # connections opened again after one broke
    _failures: int = 0  # in a row, without an event between them
    _parser: SseParser = field(default_factory=SseParser)
    finished: bool = False
    _received_since_connect: int = 0
    _clean_ends: int = 0

    def call(self) -> Call:
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        return Call("GET", self.path, params=self.params, headers=headers, safe=True)

    def connected(self) -> None:
        self._parser = SseParser()  # a half-received message of the old connection is dropped
        self._received_since_connect = 0

    def lines(self, line: str) -> Iterator[Event]:
        message = self._parser.feed(line)
        if message is None:
            return
        event_id, _, data = message
        if not data:
            if event_id is not None and event_id.isdigit():
                self.last_event_id = int(event_id)
            return
        event = Event.from_dict(json.loads(data))
        if event_id is not None and event_id.isdigit():
            self.last_event_id = int(event_id)
        else:
            self.last_event_id = event.id
        self._failures = 0
        self._clean_ends = 0
        self._received_since_connect += 1
        if self.stop_at_terminal and event.terminal:
            self.finished = True
        yield event

    def ended(self) -> float | None:
        """The server closed the stream in good order: seconds to wait before opening it
        again, or None: it is over. A job's stream ends after the terminal event, or at once
        when it resumes after that event: a job stream that ends with nothing new is over."""
        if self.finished:
            return None
        if self._received_since_connect:
            self.reconnects += 1
            return 0.0
        self._clean_ends += 1
        if self.stop_at_terminal and (self._clean_ends > 1 or self.last_event_id is not None):
            self.finished = True
            return None
        self.reconnects += 1
        return self.retry.backoff(min(self._clean_ends, 6))

    def refused(self, response: httpx.Response) -> float:
        """The server answered an error: seconds to wait before asking again (429, 503), else
        the error is raised."""
        delay = self.retry.after(self.call(), self._failures, response)
        self._failures += 1
        return delay

    def broken(self, exc: Exception) -> float:
        """The connection broke: seconds to wait before the next; ConnectionFailed when it has
        failed too often in a row."""
        delay = self.retry.after(self.call(), self._failures, exc)
        self._failures += 1
        self.reconnects += 1
        return delay


class StreamState:
    """What the clients' event iterators tell of their stream."""

    stream: EventStream

    @property
    def reconnects(self) -> int:
        """Connections opened again after one broke or ended early."""
        return self.stream.reconnects

    @property
    def last_event_id(self) -> int | None:
        """The id of the last event handed out: where the stream resumes."""
        return self.stream.last_event_id
