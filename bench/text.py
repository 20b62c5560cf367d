"""Text-generation benchmark: tokens/s and time to first token through the service vs the
model's own `generate()` in-process, and 4 concurrent requests vs the same 4 one after another.

Side by side in one run, same prompts, greedy decoding, the same max_new_tokens:
- in-process: transformers' `generate()` on the same weights, one thread (a Serve replica with a
  fractional CPU runs torch with one thread too), first token timed with a streamer;
- busque: POST /v1/jobs, then the job's SSE stream (first `job.output` = first token; the result's
  usage gives the token count), on the real app in a Ray cluster of its own;
- concurrency: 4 requests submitted at once (busque decodes them together) vs the same 4 submitted
  one after another, total tokens/s.
Writes bench/results/text.json and text.md.

    python bench/text.py [--tokens 64] [--repeats 3] [--device auto]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

MODEL = "smollm2-135m-instruct"
PROMPTS = [
    "Explain what a hash function is in two sentences.",
    "Write a short poem about the ocean.",
    "List three uses of a paperclip.",
    "Describe a cat to someone who has never seen one.",
]


def settings_for(home: Path, port: int, args):
    from busque.config import Settings

    small = {"num_cpus": 0.25}
    return Settings(
        home=home,
        text={"cache_dir": args.cache_dir, "device": args.device, "max_batch": 4},
        serve={
            "port": port,
            "grpc_port": harness.free_port(),
            "gateway": {"num_cpus": 0.25, "max_ongoing_requests": 100},
            "dispatcher": {"num_cpus": 0.25, "max_ongoing_requests": 100},
        },
        model_deployments={
            "textgen": small,
            "embedder": small,
            "matcher": small,
            "ingest": small,
            "utility": small,
        },
        faces={"enabled": False},
    )


# ---- in-process baseline ----


def bench_in_process(settings, tokens: int, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    from busque.models.embedding.base import resolve_device
    from busque.models.text.weights import model_dir

    if resolve_device(settings.text.device) == "cpu":
        torch.set_num_threads(1)
    source = model_dir(settings)
    device = resolve_device(settings.text.device)
    tokenizer = AutoTokenizer.from_pretrained(source)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device).eval()

    class FirstToken(BaseStreamer):
        def __init__(self):
            self.calls, self.first_at = 0, None

        def put(self, value):
            self.calls += 1
            if self.calls == 2 and self.first_at is None:  # call 1 is the prompt
                self.first_at = time.perf_counter()

        def end(self):
            pass

    runs = []
    for _ in range(repeats):
        for prompt in PROMPTS:
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            ).to(device)
            streamer = FirstToken()
            started = time.perf_counter()
            with torch.inference_mode():
                out = lm.generate(
                    **ids,
                    max_new_tokens=tokens,
                    do_sample=False,
                    streamer=streamer,
                    pad_token_id=tokenizer.eos_token_id,
                )
            elapsed = time.perf_counter() - started
            made = out.shape[1] - ids["input_ids"].shape[1]
            runs.append({"tokens": made, "seconds": elapsed, "ttft": streamer.first_at - started})
    return _summary(runs)


def _summary(runs: list[dict]) -> dict:
    tokens = sum(r["tokens"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "requests": len(runs),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2),
        "ttft_p50_ms": round(statistics.median(r["ttft"] for r in runs) * 1000, 1),
        "latency_p50_s": round(statistics.median(r["seconds"] for r in runs), 3),
    }


# ---- through the service ----


def one_job(client: httpx.Client, prompt: str, tokens: int) -> dict:
    """POST a job and read its SSE stream: time to the first output and to the result."""
    started = time.perf_counter()
    created = client.post(
        "/v1/jobs",
        json={
            "model": MODEL,
            "input": {"prompt": prompt},
            "params": {"temperature": 0, "max_new_tokens": tokens},
        },
    )
    assert created.status_code == 202, created.text
    first = None
    with client.stream("GET", f"/v1/jobs/{created.json()['id']}/events", timeout=300) as events:
        for line in events.iter_lines():
            if line.startswith("event: job.output") and first is None:
                first = time.perf_counter()
            if line.startswith("data:") and '"job.result"' in line:
                result = json.loads(line[5:])["data"]["result"]
                return {
                    "tokens": result["usage"]["completion_tokens"],
                    "seconds": time.perf_counter() - started,
                    "ttft": first - started,
                }
            if line.startswith("data:") and '"status": "failed"' in line:
                raise RuntimeError(line)
    raise RuntimeError("the stream ended without a result")


def bench_service(app, tokens: int, repeats: int) -> dict:
    with app.client() as client:
        one_job(client, "Warm up.", 4)
        sequential = [one_job(client, p, tokens) for _ in range(repeats) for p in PROMPTS]
        concurrent_s, concurrent_tokens = [], 0
        for _ in range(repeats):
            results: list[dict] = []

            def run(prompt, into):
                with app.client() as own:
                    into.append(one_job(own, prompt, tokens))

            threads = [threading.Thread(target=run, args=(p, results)) for p in PROMPTS]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            concurrent_s.append(time.perf_counter() - started)
            concurrent_tokens += sum(r["tokens"] for r in results)
        seq_batches = [
            sum(r["seconds"] for r in sequential[i : i + 4]) for i in range(0, len(sequential), 4)
        ]
    return {
        "sequential": _summary(sequential),
        "four_at_once": {
            "rounds": repeats,
            "tokens": concurrent_tokens,
            "tokens_per_s": round(concurrent_tokens / sum(concurrent_s), 2),
            "seconds_per_four_p50": round(statistics.median(concurrent_s), 3),
        },
        "four_one_after_another": {
            "tokens_per_s": round(sum(r["tokens"] for r in sequential) / sum(seq_batches), 2),
            "seconds_per_four_p50": round(statistics.median(seq_batches), 3),
        },
    }


def device_name(settings) -> str:
    import torch

    from busque.models.embedding.base import resolve_device

    device = resolve_device(settings.text.device)
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"CPU ({harness.cpu_model()}), torch threads 1"


def write_report(results: dict, write: bool = True) -> None:
    base, svc = results["in_process"], results["busque"]
    seq, four, alone = svc["sequential"], svc["four_at_once"], svc["four_one_after_another"]
    ratio = results["verdicts"]["tokens_per_s_ratio"]
    lines = [
        f"# Text generation benchmark ({results['device']})",
        "",
        f"{MODEL} (the bundled SmolLM2, float weights converted from its GGUF), greedy, "
        f"max_new_tokens {results['max_new_tokens']}, {len(PROMPTS)} prompts x "
        f"{results['repeats']} repeats. In-process: transformers `generate()`; busque: "
        "POST /v1/jobs + the job's SSE stream (time to first token = the first `job.output` "
        "event; tokens from the result's usage), Ray Serve on the same machine.",
        "",
        "| case | requests | tokens | tokens/s | TTFT p50 ms | latency p50 s |",
        "|---|---|---|---|---|---|",
        f"| in-process generate() | {base['requests']} | {base['tokens']} | "
        f"{base['tokens_per_s']} | {base['ttft_p50_ms']} | {base['latency_p50_s']} |",
        f"| busque, one at a time | {seq['requests']} | {seq['tokens']} | {seq['tokens_per_s']} "
        f"| {seq['ttft_p50_ms']} | {seq['latency_p50_s']} |",
        "",
        "| 4 requests | tokens/s | seconds for the 4 (p50) |",
        "|---|---|---|",
        f"| submitted at once (decoded together) | {four['tokens_per_s']} | "
        f"{four['seconds_per_four_p50']} |",
        f"| one after another | {alone['tokens_per_s']} | {alone['seconds_per_four_p50']} |",
        "",
        f"**Floor** (busque tokens/s >= 0.9x in-process): {ratio}x: "
        f"{'met' if ratio >= 0.9 else 'missed'}. Four at once vs one after another: "
        f"{results['verdicts']['concurrency_gain']}x tokens/s.",
    ]
    harness.write_results("text", results, "\n".join(lines), write=write)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--tokens", type=int, default=64, help="max_new_tokens per request")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the 4 prompts")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "busque-tests" / "models",
        help="where the converted SmolLM2 weights are kept",
    )
    args = parser.parse_args()

    import ray
    from ray import serve

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp) / "busque", harness.free_port(), args)
        results = {
            "machine": harness.machine(),
            "device": device_name(settings),
            "max_new_tokens": args.tokens,
            "repeats": args.repeats,
        }
        print("in-process generate() ...", flush=True)
        results["in_process"] = bench_in_process(settings, args.tokens, args.repeats)
        harness.start_ray()
        try:
            print("busque ...", flush=True)
            app = harness.start_app(settings)
            results["busque"] = bench_service(app, args.tokens, args.repeats)
            serve.delete(settings.serve.app_name)
        finally:
            ray.shutdown()
    svc = results["busque"]
    results["verdicts"] = {
        "tokens_per_s_ratio": round(
            svc["sequential"]["tokens_per_s"] / results["in_process"]["tokens_per_s"], 3
        ),
        "concurrency_gain": round(
            svc["four_at_once"]["tokens_per_s"] / svc["four_one_after_another"]["tokens_per_s"], 2
        ),
    }
    write_report(results, write=not args.no_write)


if __name__ == "__main__":
    main()
