"""The asyncio client: the same methods as Client, each returning an awaitable (the event
streams and iter_* are async iterators)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from busque.client.operations import Flow, Operations
from busque.client.sse import EventStream, StreamState
from busque.client.transport import Call, RetryPolicy, build
from busque.client.types import Event


class AsyncClient(Operations):
    """busque's API for asyncio: `await client.run("echo", {...})`,
    `async for event in client.job_events(job_id)`. Configured as Client."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ):
        super().__init__(base_url, api_key, max_retries, retry)
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def openai(self, **kwargs: Any):
        """An `openai.AsyncOpenAI` client pointed at busque's OpenAI-compatible endpoints with
        this client's key. Needs `pip install openai`."""
        import openai

        return openai.AsyncOpenAI(
            base_url=self.config.base_url + "/v1", api_key=self.config.api_key, **kwargs
        )

    async def send(self, call: Call) -> httpx.Response:
        """One call, retried as the RetryPolicy allows; an error answer raises BusqueError."""
        attempt = 0
        while True:
            try:
                outcome = await self._http.send(build(self._http, self.config, call))
            except httpx.TransportError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                return outcome
            await asyncio.sleep(self.retry.after(call, attempt, outcome))
            attempt += 1

    async def _run(self, flow: Flow) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self.send(call))
        except StopIteration as done:
            return done.value

    async def _pages(self, method: Callable[..., Any], **kwargs: Any) -> AsyncIterator[Any]:
        cursor = kwargs.pop("cursor", None)
        while True:
            page = await method(**kwargs, cursor=cursor)
            for item in page.data:
                yield item
            if not (cursor := page.next_cursor):
                return

    def _events(self, stream: EventStream) -> AsyncEvents:
        return AsyncEvents(self._follow(stream), stream)

    async def _follow(self, stream: EventStream) -> AsyncIterator[Event]:
        while not stream.finished:
            call = stream.call()
            call.timeout = httpx.Timeout(10.0, read=stream.read_timeout_s)
            try:
                response = await self._http.send(build(self._http, self.config, call), stream=True)
                try:
                    if not response.is_success:
                        await response.aread()
                        delay = stream.refused(response)
                    else:
                        stream.connected()
                        async for line in response.aiter_lines():
                            for event in stream.lines(line):
                                yield event
                            if stream.finished:
                                return
                        delay = stream.ended()
                        if delay is None:
                            return
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                delay = stream.broken(exc)
            await asyncio.sleep(delay)


class AsyncEvents(StreamState, AsyncIterator[Event]):
    """The events of a stream, as they come (see Events)."""

    def __init__(self, events: AsyncIterator[Event], stream: EventStream):
        self._events, self.stream = events, stream

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop following (closes the connection)."""
        await self._events.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> AsyncEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
