"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from busque.client.operations import Flow, Operations
from busque.client.sse import EventStream, StreamState
from busque.client.transport import Call, RetryPolicy, build
from busque.client.types import Event


class Client(Operations):
    """busque's API, blocking. `base_url` and `api_key` default to BUSQUE_URL and
    BUSQUE_API_KEY (then the dev key file .busque/admin.key); explicit arguments win.
    `http`: your own httpx.Client (proxies, certificates, event hooks). Use it as a context
    manager, or call close()."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ):
        super().__init__(base_url, api_key, max_retries, retry)
        self._http = http or httpx.Client(timeout=timeout)
        self._owns_http = http is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def openai(self, **kwargs: Any):
        """An `openai.OpenAI` client pointed at busque's OpenAI-compatible endpoints
        (/v1/chat/completions, /v1/embeddings) with this client's key. Needs `pip install
        openai`."""
        import openai

        return openai.OpenAI(
            base_url=self.config.base_url + "/v1", api_key=self.config.api_key, **kwargs
        )

    def send(self, call: Call) -> httpx.Response:
        """One call, retried as the RetryPolicy allows; an error answer raises BusqueError."""
        attempt = 0
        while True:
            try:
                outcome = self._http.send(build(self._http, self.config, call))
            except httpx.TransportError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            time.sleep(self.retry.after(call, attempt, outcome))
            attempt += 1

    def _run(self, flow: Flow) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(self.send(call))
        except StopIteration as done:
            return done.value

    def _pages(self, method: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        cursor = kwargs.pop("cursor", None)
        while True:
            page = method(**kwargs, cursor=cursor)
            yield from page.data
            if not (cursor := page.next_cursor):
                return

    def _events(self, stream: EventStream) -> Events:
        return Events(self._follow(stream), stream)

    def _follow(self, stream: EventStream) -> Iterator[Event]:
        while not stream.finished:
            call = stream.call()
            call.timeout = httpx.Timeout(10.0, read=stream.read_timeout_s)
            try:
                response = self._http.send(build(self._http, self.config, call), stream=True)
                try:
                    if not response.is_success:
                        response.read()
                        delay = stream.refused(response)
                    else:
                        stream.connected()
                        for line in response.iter_lines():
                            yield from stream.lines(line)
                            if stream.finished:
                                return
                        delay = stream.ended()
                        if delay is None:
                            return
                finally:
                    response.close()
            except httpx.TransportError as exc:
                delay = stream.broken(exc)
            time.sleep(delay)


class Events(StreamState, Iterator[Event]):
    """The events of a stream, as they come; `reconnects` counts the connections it opened
    again, `last_event_id` is where it would resume. close() (or leaving a `with` block) ends
    it."""

    def __init__(self, events: Iterator[Event], stream: EventStream):
        self._events, self.stream = events, stream

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Stop following (closes the connection)."""
        self._events.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Events:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
