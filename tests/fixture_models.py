"""Tiny models, each one failure mode (Cog's server tests do the same), registered only in tests
through Settings.model_modules. They run in real ModelHost replicas behind the real dispatcher."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pydantic import BaseModel, Field

from busque.models.base import JobContext, Model, ModelError
from busque.models.registry import ModelRegistry, ModelSpec


class SleepInput(BaseModel):
    seconds: float = Field(ge=0, le=120)
    marker_dir: str | None = None  # if set, one file per execution is written there


class Sleep(Model):
    """Sleeps in small steps, reporting progress; says its pid first so a test can kill it."""

    def _predict(self, inputs, ctx: JobContext):
        ctx.output({"pid": os.getpid(), "attempt": ctx.attempt})
        if inputs.get("marker_dir"):
            marker = Path(inputs["marker_dir"]) / f"{ctx.job_id}.{ctx.attempt}"
            marker.write_text(str(time.time()))
        deadline = time.monotonic() + inputs["seconds"]
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            time.sleep(0.02)
        return {"slept": inputs["seconds"], "pid": os.getpid()}


class FailInput(BaseModel):
    message: str = "boom"
    retryable: bool = False
    fail_attempts: int = Field(99, description="fail this many attempts, then succeed")


class Fail(Model):
    def _predict(self, inputs, ctx: JobContext):
        if ctx.attempt <= inputs["fail_attempts"]:
            if inputs["retryable"]:
                raise ModelError("flaky", inputs["message"], retryable=True)
            raise RuntimeError(inputs["message"])
        return {"succeeded_on_attempt": ctx.attempt}


class CrashInput(BaseModel):
    crash_attempts: int = 1


class Crash(Model):
    """Kills its own replica process (SIGKILL) on the first attempts."""

    def _predict(self, inputs, ctx: JobContext):
        if ctx.attempt <= inputs["crash_attempts"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"survived_on_attempt": ctx.attempt}


class HangInput(BaseModel):
    pass


class Hang(Model):
    """Never returns and ignores cancellation."""

    def _predict(self, inputs, ctx: JobContext):
        while True:
            time.sleep(1)


class ProgressInput(BaseModel):
    steps: int = Field(5, ge=1, le=100)
    delay: float = Field(0.05, ge=0, le=5)


class Progress(Model):
    def _predict(self, inputs, ctx: JobContext):
        for step in range(1, inputs["steps"] + 1):
            time.sleep(inputs["delay"])
            ctx.progress(100 * step / inputs["steps"], f"step {step}")
        return {"steps": inputs["steps"]}


class StreamInput(BaseModel):
    tokens: list[str] = Field(min_length=1, max_length=1000)
    delay: float = Field(0.02, ge=0, le=5)


class Stream(Model):
    def _predict(self, inputs, ctx: JobContext):
        for token in inputs["tokens"]:
            ctx.check_cancelled()
            time.sleep(inputs["delay"])
            ctx.output(token)
        return {"text": "".join(inputs["tokens"])}


class ArtifactInput(BaseModel):
    text: str


class Artifact(Model):
    def _predict(self, inputs, ctx: JobContext):
        info = ctx.artifact("out.txt", inputs["text"].encode(), "text/plain")
        return {"artifact": info["name"], "size": info["size"]}


def register(registry: ModelRegistry, settings) -> None:
    def spec(model_id, cls, schema, deployment="fixtures", **extra):
        registry.register(
            ModelSpec(
                id=model_id,
                kind="test-fixture",
                backend="python",
                factory=lambda s: cls(),
                input_schema=schema,
                deployment=deployment,
                **extra,
            )
        )

    spec("sleep", Sleep, SleepInput)
    spec("fail", Fail, FailInput)
    spec("crash", Crash, CrashInput, deployment="crashy")
    spec("hang", Hang, HangInput, timeout_s=1.0, max_attempts=2)
    spec("progress", Progress, ProgressInput)
    spec("stream", Stream, StreamInput)
    spec("artifact", Artifact, ArtifactInput)
    # Listed, never runnable: what a model without weights looks like.
    spec("weightless", Sleep, SleepInput, unavailable=lambda s: "no weights for this fixture")
