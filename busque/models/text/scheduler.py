"""Batches concurrent generation requests: requests waiting when a round starts are decoded
together (up to `max_batch`); those arriving during a round wait for the next one.

Plain threads, no Ray: the TextGenerator deployment owns one; a test or notebook can too.
"""

from __future__ import annotations

import threading
from collections import deque

from busque.models.text.generator import GenerationRequest, TextGenerator


class BatchScheduler:
    def __init__(self, model: TextGenerator, max_batch: int):
        self.model = model
        self.max_batch = max_batch
        self._waiting: deque[tuple[GenerationRequest, threading.Event]] = deque()
        self._wake = threading.Condition()
        self.rounds = 0
        threading.Thread(target=self._loop, name="textgen-rounds", daemon=True).start()

    def submit(self, request: GenerationRequest) -> threading.Event:
        """Queue a request; the returned event is set when it has finished (or failed: then
        `request.error` holds the exception)."""
        done = threading.Event()
        with self._wake:
            self._waiting.append((request, done))
            self._wake.notify()
        return done

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._waiting:
                    self._wake.wait()
                batch = [
                    self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))
                ]
            self.rounds += 1
            try:
                self.model.generate_batch([request for request, _ in batch])
            except Exception as exc:  # a failed round fails its requests, not the scheduler
                for request, _ in batch:
                    request.error = exc
            for _, done in batch:
                done.set()
