"""Feeds concurrent generation requests to the model's continuous batching: a request waits
only until the next decoding step, then joins the running batch (up to `max_batch` rows).

Plain threads, no Ray: the TextGenerator deployment owns one; a test or notebook can too.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from busque.models.text.generator import GenerationRequest, TextGenerator

logger = logging.getLogger("busque.models")


class BatchScheduler:
    def __init__(self, model: TextGenerator, max_batch: int):
        self.model = model
        self.max_batch = max_batch
        self._waiting: deque[GenerationRequest] = deque()
        self._wake = threading.Condition()
        self.joined = 0  # requests that joined a batch already decoding (for the curious)
        threading.Thread(target=self._loop, name="textgen", daemon=True).start()

    def submit(self, request: GenerationRequest) -> threading.Event:
        """Queue a request; the returned event is set when it has finished (or failed: then
        `request.error` holds the exception)."""
        done = threading.Event()
        request.on_done = done.set
        with self._wake:
            self._waiting.append(request)
            self._wake.notify()
        return done

    def _take(self, capacity: int, block: bool) -> list[GenerationRequest]:
        with self._wake:
            while block and not self._waiting:
                self._wake.wait()
            taken = [self._waiting.popleft() for _ in range(min(capacity, len(self._waiting)))]
        if taken and not block:
            self.joined += len(taken)
        # What is being decoded now (a failed step fails exactly these).
        self._taken = [r for r in self._taken if r.finish_reason is None] + taken
        return taken

    def _loop(self) -> None:
        while True:
            self._taken: list[GenerationRequest] = []
            try:
                self.model.serve(self._take, self.max_batch)
            except Exception as exc:  # a failed step fails its requests, not the scheduler
                logger.exception("text generation failed")
                for request in self._taken:
                    if request.finish_reason is None:
                        request.error = exc
                        request.on_done()
