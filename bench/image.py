"""Image generation benchmark: time per denoising step through busque vs the bare pipeline.

The same Stable Diffusion weights, prompt, size, step count and seeds on both sides, one image
at a time (txt2img):

- baseline: the diffusers `StableDiffusionPipeline` called in-process (no Ray, no HTTP, no job
  store, no PNG, no object store), with as many torch threads as the service's replica has.
- busque: `POST /v1/jobs {"model": "stable-diffusion", ...}` with `Prefer: wait=120` through the
  real app on Ray Serve (the Serve settings `busque serve` ships); per step = the job's
  (finished_at - started_at) / steps, i.e. everything from the dispatcher claiming the job to
  its result being stored: the hop to the ModelHost replica, a progress event per step, PNG
  encoding and the artifact upload. The client's wall time per step is reported beside it.

The floor compares busque's jobs with bare-pipeline images run in turn with them, one by one
(a shared machine's load drifts; alternating gives both sides the same drift: A, B, B, A, ...);
the bare pipeline also runs alone before the app starts and after it stops, which shows how much
the machine's noise alone moves the figures. Per-image figures are medians over the images
(>= 5) after one warm-up image per case (the first job also loads the model), with
distribution-free intervals; busque's speed relative to the bare pipeline is the paired
per-turn ratio of time per step, read as ahead / level / behind, and the floor (busque's time
per step within 10% of the bare pipeline's) is met only when that ratio's whole interval clears
it.

Without --model-path the weights are a random "small" pipeline built here (no Stable Diffusion
weights exist offline): UNet block_out_channels (64, 128), 5.7 M parameters, a 5-layer CLIP
text encoder of width 64, a two-block VAE (latents are half the image side, real SD: an eighth).
Its images are noise, its per-step work is a real UNet's (fewer channels). Writes
bench/results/image.json and image.md.

    python bench/image.py [--model-path DIR] [--steps 10] [--size 64] [--images 6]
                                    # ~2 minutes on 2 cores with the small random pipeline
    python bench/image.py --quick   # the tiny test pipeline, 2 steps, 5 images; writes nothing
    python bench/image.py --url URL --api-key K --model-path DIR
                                    # a running busque serving the weights in DIR: its jobs
                                    # against DIR's bare pipeline in this process
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import harness

PROMPT = "a watercolor portrait of a cat wearing a red scarf"
GUIDANCE = 7.5
FLOOR_PCT = 10.0  # busque's time per step may exceed the bare pipeline's by at most this
SMALL_UNET = (64, 128)
SMALL_WIDTH = 64


# ---- the model ----


def small_model(directory: Path, tiny: bool = False) -> Path:
    """The small random pipeline (tiny: the tests' own, UNet (32, 64), width 32)."""
    from busque.testing.tiny_models import build_tiny_stable_diffusion

    if tiny:
        return build_tiny_stable_diffusion(directory)
    return build_tiny_stable_diffusion(directory, unet_channels=SMALL_UNET, width=SMALL_WIDTH)


def parameter_counts(pipe) -> dict:
    return {
        name: round(sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6, 2)
        for name in ("unet", "vae", "text_encoder")
    }


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return harness.cpu_model()


# ---- the bare pipeline ----


class Bare:
    """The diffusers pipeline as a user would call it, loaded as busque loads it."""

    def __init__(self, model_path: Path, device: str):
        import torch
        from diffusers import StableDiffusionPipeline

        self.device = device
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.pipe = StableDiffusionPipeline.from_pretrained(
            str(model_path),
            local_files_only=True,
            dtype=dtype,
            safety_checker=None,
            requires_safety_checker=False,
        ).to(device)
        self.pipe.set_progress_bar_config(disable=True)

    def one(self, seed: int, steps: int, size: int) -> tuple[dict, bytes]:
        import torch

        from busque.models.image.diffusion import png_bytes

        marks: list[float] = []

        def on_step_end(pipe, index, timestep, kwargs):
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            marks.append(time.perf_counter())
            return kwargs

        started = time.perf_counter()
        with torch.inference_mode():
            image = self.pipe(
                PROMPT,
                num_inference_steps=steps,
                guidance_scale=GUIDANCE,
                width=size,
                height=size,
                generator=torch.Generator(self.device).manual_seed(seed),
                callback_on_step_end=on_step_end,
            ).images[0]
        elapsed = time.perf_counter() - started
        deltas = [b - a for a, b in zip(marks, marks[1:], strict=False)]
        return {
            "image_s": elapsed,
            "per_step_ms": 1000 * elapsed / steps,
            # Between step callbacks: the UNet alone, without text encoding and VAE decoding.
            "unet_step_ms": 1000 * statistics.median(deltas) if deltas else None,
        }, png_bytes(image)  # as busque encodes it, for the same-image check

    def run(self, seeds: list[int], steps: int, size: int) -> tuple[list[dict], bytes]:
        self.one(seeds[0] + 1000, steps, size)  # warm-up
        runs, first = [], b""
        for seed in seeds:
            run, png = self.one(seed, steps, size)
            runs.append(run)
            first = first or png
        return runs, first


# ---- busque ----


def replica_torch_threads(num_cpus: float) -> int:
    """torch's threads in a Ray worker with the ModelHost's num_cpus (Ray sets
    OMP_NUM_THREADS from it: 1 for a fraction)."""
    import ray

    @ray.remote(num_cpus=num_cpus)
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return ray.get(threads.remote())


def settings_for(home: Path, model_path: Path, device: str, steps: int, size: int, gpus: int):
    from busque.config import Settings

    small = {"num_cpus": 0.25, "max_ongoing_requests": 64}
    front = {"num_cpus": 0.25, "max_ongoing_requests": 1000}
    values = {
        "home": home,
        "images": {
            "model_path": str(model_path),
            "device": device,
            "max_steps": max(50, steps),
            "max_side": max(768, size),
        },
        "faces": {"enabled": False},
        "serve": {
            "port": harness.free_port(),
            "grpc_port": harness.free_port(),
            "gateway": front,
            "dispatcher": front,
        },
        "model_deployments": {
            **{name: small for name in ("embedder", "matcher", "ingest", "utility", "textgen")},
            "imagegen": {
                "num_cpus": 0.5,
                "num_gpus": gpus,
                "max_ongoing_requests": 8,
                "min_replicas": 1,  # warm from the start (on demand by default)
            },
        },
    }
    return Settings(**values)  # the image models are in the catalog (busque/runtime.py)


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def submit(client: httpx.Client, seed: int, steps: int, size: int) -> tuple[dict, float]:
    body = {
        "model": "stable-diffusion",
        "input": {
            "prompt": PROMPT,
            "steps": steps,
            "guidance": GUIDANCE,
            "width": size,
            "height": size,
            "seed": seed,
        },
    }
    started = time.perf_counter()
    response = client.post("/v1/jobs", json=body, headers={"Prefer": "wait=120"})
    assert response.status_code in (201, 202), response.text
    job = response.json()
    while job["status"] not in ("succeeded", "failed", "canceled"):
        job = client.get(f"/v1/jobs/{job['id']}", params={"wait": 60}).json()
    wall = time.perf_counter() - started
    assert job["status"] == "succeeded", job
    return job, wall


def step_events(client: httpx.Client, job_id: str) -> list[float]:
    """When each job.progress event was recorded (the job's SSE stream, replayed after the job
    ended): one per denoising step."""
    times = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[len("data: ") :])
                if event["type"] == "job.progress":
                    times.append(seconds(event["created_at"]))
    return times


def busque_run(client: httpx.Client, seed: int, steps: int, size: int) -> dict:
    job, wall = submit(client, seed, steps, size)
    started, finished = seconds(job["started_at"]), seconds(job["finished_at"])
    marks = step_events(client, job["id"])
    return {
        "job_s": finished - started,
        "per_step_ms": 1000 * (finished - started) / steps,
        "client_s": wall,
        "client_per_step_ms": 1000 * wall / steps,
        # From the progress events' timestamps: the replica's time per step (as recorded),
        # the time to the first step's event (dispatch, text encoding, step 1) and after the
        # last (VAE decoding, PNG, artifact upload, the result's commit).
        "replica_step_ms": 1000 * (marks[-1] - marks[0]) / (len(marks) - 1)
        if len(marks) > 1
        else None,
        "to_first_step_ms": 1000 * (marks[0] - started),
        "after_last_step_ms": 1000 * (finished - marks[-1]),
        "job_id": job["id"],
    }


def replica_threads_of(client: httpx.Client) -> tuple[int, float | None]:
    """A running busque's image replica: torch threads by Ray's rule (OMP_NUM_THREADS is the
    floor of its num_cpus, at least 1; 1 where /v1/models does not say), and its num_cpus."""
    models = client.get("/v1/models")
    models.raise_for_status()
    entry = next((m for m in models.json()["data"] if m["id"] == "stable-diffusion"), None)
    if entry is None:
        raise SystemExit("that busque has no stable-diffusion model (GET /v1/models)")
    cpus = (entry.get("resources") or {}).get("num_cpus")
    return max(1, int(cpus or 1)), cpus


def bench_interleaved(client: httpx.Client, bare: Bare, seeds: list[int], steps: int, size: int):
    """busque jobs and bare-pipeline images in turn (the order swapped every pair), so both
    sides see the same drift of a shared machine's load; the app is idle during bare images."""
    warm, _ = submit(client, seeds[0] + 1000, steps, size)  # loads the model
    bare.one(seeds[0] + 1000, steps, size)
    busque, paired, first = [], [], b""
    for i, seed in enumerate(seeds):
        if i % 2:
            paired.append(bare.one(seed, steps, size)[0])
        busque.append(busque_run(client, seed, steps, size))
        if not i % 2:
            paired.append(bare.one(seed, steps, size)[0])
        if not first:
            job_id = busque[-1]["job_id"]
            listing = client.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]
            url = next(a["url"] for a in listing if a["name"] == "image.png")
            first = httpx.get(url, timeout=30).content
    return {
        "busque": busque,
        "bare": paired,
        "first_job_s": round(seconds(warm["finished_at"]) - seconds(warm["started_at"]), 2),
        "first_image_png": first,
    }


def own_app_turns(settings, bare: Bare, seeds: list[int], steps: int, size: int) -> dict:
    """bench_interleaved on an app of its own, started here and deleted after."""
    from ray import serve

    app = harness.start_app(settings)
    try:
        with app.client() as client:
            client.timeout = 180
            return bench_interleaved(client, bare, seeds, steps, size)
    finally:
        serve.delete(settings.serve.app_name)


# ---- report ----


def med(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def interval(runs: list[dict], key: str) -> dict:
    return harness.scaled(harness.median_interval([r[key] for r in runs]), 1, 2)


def verdicts(results: dict) -> dict:
    cases, steps = results["cases"], results["steps"]
    bare_step = med(cases["bare_interleaved"], "per_step_ms")
    job_step = med(cases["busque"], "per_step_ms")
    client_step = med(cases["busque"], "client_per_step_ms")
    quiet = [med(cases["bare_quiet_before"], "per_step_ms")]
    quiet.append(med(cases["bare_quiet_after"], "per_step_ms"))
    bare_medians = [*quiet, bare_step]
    overhead = 100 * (job_step / bare_step - 1)
    # Paired by turn (each busque job and the bare image run next to it): how many times
    # faster busque's time per step is than the bare pipeline's (< 1: busque slower).
    bare_ms = [r["per_step_ms"] for r in cases["bare_interleaved"]]
    ratio = harness.ratio_interval(bare_ms, [r["per_step_ms"] for r in cases["busque"]])
    client = harness.ratio_interval(bare_ms, [r["client_per_step_ms"] for r in cases["busque"]])
    floor = 1 / (1 + FLOOR_PCT / 100)
    return {
        "bare_per_step_ms": bare_step,
        "busque_job_per_step_ms": job_step,
        "busque_client_per_step_ms": client_step,
        "bare_per_step_ms_interval": interval(cases["bare_interleaved"], "per_step_ms"),
        "busque_job_per_step_ms_interval": interval(cases["busque"], "per_step_ms"),
        "busque_speed_vs_bare": harness.scaled(ratio, 1, 3),
        "busque_client_speed_vs_bare": harness.scaled(client, 1, 3),
        "verdict": harness.verdict(ratio),
        "client_verdict": harness.verdict(client),
        "overhead_pct": round(overhead, 1),
        "client_overhead_pct": round(100 * (client_step / bare_step - 1), 1),
        "overhead_ms_per_image": round((job_step - bare_step) * steps, 1),
        "overhead_vs_quiet_pct": round(100 * (job_step / statistics.fmean(quiet) - 1), 1),
        # How far the bare pipeline's own medians (quiet before, interleaved, quiet after)
        # spread: differences smaller than this are this machine's noise.
        "bare_spread_pct": round(100 * (max(bare_medians) / min(bare_medians) - 1), 1),
        "floor_pct": FLOOR_PCT,
        # met only when the whole interval of busque's speed ratio clears 1 / (1 + floor)
        "floor_met": harness.meets(ratio, floor),
    }


def markdown(results: dict) -> str:
    m, v, cases = results["machine"], results["verdicts"], results["cases"]
    model = results["model"]
    weights = (
        f"random-weight small pipeline built by the benchmark (UNet block_out_channels "
        f"{tuple(model['unet_channels'])}, cross-attention/text width {model['width']}; parameters in "
        "millions: "
        f"{model['parameters_m']}; the images are noise, the work per step is a real UNet's)"
        if model["random"]
        else f"weights from {model['path']} (parameters in millions: {model['parameters_m']})"
    )
    size, steps, n = results["size"], results["steps"], results["images"]
    svc = cases["busque"]
    all_bare = cases["bare_quiet_before"] + cases["bare_interleaved"] + cases["bare_quiet_after"]

    def bare_row(label: str, runs: list[dict]) -> str:
        return (
            f"| {label} | {med(runs, 'image_s')} | "
            f"{harness.show(interval(runs, 'per_step_ms'))} | {med(runs, 'unet_step_ms')} |"
        )

    lines = [
        f"# Image generation: a busque job against the bare diffusers pipeline "
        f"({results['device_name']}, {results['device']})",
        "",
        f"txt2img {size}x{size}, {steps} steps, guidance {GUIDANCE}, {n} images per case "
        f"(seeds {results['seeds'][0]}..{results['seeds'][-1]}) after one warm-up image; "
        f"{weights}. busque: {results['served_by']}. torch threads {results['torch_threads']} "
        f"on both sides (the ModelHost replica's, by Ray's rule from its num_cpus). "
        f"{m['cores']} cores, Python {m['python']}, torch "
        f"{results['torch']}, diffusers {results['diffusers']}; 1-minute load average at start "
        f"{m['load_avg_1m_at_start']} (a shared machine).",
        "",
        "| case | per image s (median) | per step ms (median [interval]) | UNet step ms |",
        "|---|---|---|---|",
        bare_row("bare pipeline in-process, before busque starts", cases["bare_quiet_before"]),
        bare_row("bare pipeline in-process, in turn with busque's jobs", cases["bare_interleaved"]),
        f"| **busque job, started_at -> finished_at** | {med(svc, 'job_s')} "
        f"| {harness.show(interval(svc, 'per_step_ms'))} | {med(svc, 'replica_step_ms')} "
        "(between step events) |",
        f"| busque, client wall (POST with Prefer: wait) | {med(svc, 'client_s')} "
        f"| {harness.show(interval(svc, 'client_per_step_ms'))} | - |",
        bare_row("bare pipeline in-process, after busque stopped", cases["bare_quiet_after"]),
        "",
        f"Per step = an image's whole time / {steps} on every row: text encoding and VAE decoding "
        "are in it, and for busque also the job's dispatch to the ModelHost replica, a "
        "job.progress event per step, PNG encoding and the artifact upload. *UNet step*: the "
        "median time between two step callbacks (busque: between two steps' progress events as "
        "recorded). busque's jobs and the in-turn bare images alternate one by one, so they see "
        "the same load; the floor compares those two.",
        "",
        "| comparison | busque's speed / the bare pipeline's (paired by turn) | busque is |",
        "|---|---:|---|",
        f"| job (started -> finished) | {harness.show(v['busque_speed_vs_bare'], 3)} | "
        f"**{v['verdict']}** |",
        f"| client wall (POST -> result) | {harness.show(v['busque_client_speed_vs_bare'], 3)} | "
        f"**{v['client_verdict']}** |",
        "",
        "| floor | measured | met |",
        "|---|---|---|",
        f"| busque's time per step (job started -> finished) <= the bare pipeline's + "
        f"{FLOOR_PCT:g}% (the speed ratio's whole interval >= {1 / (1 + FLOOR_PCT / 100):.3f}) | "
        f"{v['overhead_pct']:+}% ({v['busque_job_per_step_ms']} vs {v['bare_per_step_ms']} ms; "
        f"ratio {harness.show(v['busque_speed_vs_bare'], 3)}) | "
        f"{'yes' if v['floor_met'] else 'no'} |",
        "",
        "## Reading",
        "",
        f"- A busque job takes {v['busque_job_per_step_ms']} ms per step, the bare pipeline "
        f"{v['bare_per_step_ms']} ms: {v['overhead_pct']:+}% "
        f"({v['overhead_ms_per_image']:+} ms per image of {steps} steps); "
        f"{v['overhead_vs_quiet_pct']:+}% against the bare pipeline on a machine without the "
        f"app running. Seen from the client (the POST, the queue, the long-poll): "
        f"{v['client_overhead_pct']:+}% ({v['busque_client_per_step_ms']} ms per step).",
        f"- The bare pipeline's own medians differ by up to {v['bare_spread_pct']}% between the "
        "three bare cases: "
        + (
            "the measured overhead is within this machine's noise."
            if abs(v["overhead_pct"]) <= v["bare_spread_pct"]
            else "the measured overhead is larger than this machine's noise."
        ),
        f"- Where a job's time goes (medians): {med(svc, 'to_first_step_ms')} ms from its start "
        f"to the first step's event (dispatch, text encoding, step 1), "
        f"{med(svc, 'replica_step_ms')} ms between step events (the bare UNet step: "
        f"{med(all_bare, 'unet_step_ms')} ms), {med(svc, 'after_last_step_ms')} ms from the last "
        "step's event to the result (VAE decoding, PNG, artifact upload, the result's commit).",
        f"- The first job (model load included) took {results['first_job_s']} s.",
        "- A step's progress event does not hold up the model: the replica's thread hands it "
        "to the event loop and goes on; the dispatcher records it meanwhile (one small "
        "transaction), which costs CPU beside the model on a small machine, not a wait.",
        f"- Same seed, same image: busque's PNG for seed {results['seeds'][0]} is "
        + (
            "byte-identical to the bare pipeline's."
            if results["identical_image"]
            else "NOT byte-identical to the bare pipeline's (different thread counts or "
            "kernels can change float results)."
        ),
    ]
    behind = [
        f"- {what}: busque's speed is {harness.show(v[key], 3)} of the bare pipeline's."
        for what, key, word in (
            ("job time per step", "busque_speed_vs_bare", "verdict"),
            ("client wall per step", "busque_client_speed_vs_bare", "client_verdict"),
        )
        if v[word] == "behind"
    ]
    lines += ["", "## Where busque is behind", "", *(behind or ["Nowhere in this run."])]
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--model-path", type=Path, help="a diffusers directory (real weights)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps per image")
    parser.add_argument("--size", type=int, default=64, help="image side, a multiple of 8")
    parser.add_argument("--images", type=int, default=6, help="measured images per case (>= 5)")
    parser.add_argument(
        "--quick", action="store_true", help="the tiny test pipeline, 2 steps, 5 images"
    )
    parser.add_argument("--url", help="a running busque (else this starts its own on local Ray)")
    parser.add_argument("--api-key", help="with --url: a key that may run jobs (jobs:write)")
    args = parser.parse_args()
    if args.url and not (args.api_key and args.model_path):
        parser.error("--url needs --api-key and --model-path (the weights that busque serves)")
    if args.quick:
        args.steps, args.size, args.images = 2, 64, 5
    if args.images < 5:
        parser.error("--images: at least 5 (fewer give no interval worth the name)")

    import diffusers
    import ray
    import torch

    from busque.models.embedding.base import resolve_device

    device = resolve_device(args.device)
    gpus = 1 if device.startswith("cuda") else 0
    seeds = list(range(1, args.images + 1))
    with tempfile.TemporaryDirectory() as tmp:
        if args.model_path:
            model_path = args.model_path.resolve()
        else:
            print("building the small random pipeline ...", flush=True)
            model_path = small_model(Path(tmp) / "sd-small", args.quick)
        load = os.getloadavg()[0]
        remote = None
        if args.url:
            headers = {"X-API-Key": args.api_key}
            remote = httpx.Client(base_url=args.url.rstrip("/"), headers=headers, timeout=180)
            threads, _ = replica_threads_of(remote)
        else:
            harness.start_ray(num_gpus=gpus)
            threads = replica_torch_threads(0.5)
        torch.set_num_threads(threads)
        bare = Bare(model_path, device)
        print(f"bare pipeline, before busque (torch threads {threads}) ...", flush=True)
        before, bare_png = bare.run(seeds, args.steps, args.size)
        print("busque jobs and bare images in turn ...", flush=True)
        if remote is not None:
            try:
                turns = bench_interleaved(remote, bare, seeds, args.steps, args.size)
            finally:
                remote.close()
        else:
            settings = settings_for(
                Path(tmp) / "busque", model_path, args.device, args.steps, args.size, gpus
            )
            try:
                turns = own_app_turns(settings, bare, seeds, args.steps, args.size)
            finally:
                ray.shutdown()
        print("bare pipeline, after busque ...", flush=True)
        after, _ = bare.run(seeds, args.steps, args.size)
        results = {
            "benchmark": "txt2img time per denoising step: busque job vs the bare pipeline",
            "machine": harness.machine(load_avg_1m_at_start=round(load, 2)),
            "device": device,
            "device_name": device_name(device),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "torch_threads": threads,
            "served_by": "a running busque (--url)" if args.url else "its own app on local Ray",
            "model": {
                "random": args.model_path is None,
                "unet_channels": (32, 64) if args.quick else SMALL_UNET,
                "width": 32 if args.quick else SMALL_WIDTH,
                "path": str(args.model_path) if args.model_path else None,
                "parameters_m": parameter_counts(bare.pipe),
            },
            "prompt": PROMPT,
            "size": args.size,
            "steps": args.steps,
            "images": args.images,
            "seeds": seeds,
            "identical_image": turns["first_image_png"] == bare_png,
            "first_job_s": turns["first_job_s"],
            "cases": {
                "bare_quiet_before": before,
                "bare_interleaved": turns["bare"],
                "busque": turns["busque"],
                "bare_quiet_after": after,
            },
        }
    results["verdicts"] = verdicts(results)
    results["quick"] = args.quick
    harness.publish("image", results, markdown(results), args)


if __name__ == "__main__":
    main()
