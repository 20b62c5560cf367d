"""The architecture's rules, read from the code: which layer may import which, and no import
cycle among busque/ and pipelines/ modules. Imports inside functions count; only
`if TYPE_CHECKING:` blocks do not (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# busque's layers: its top-level packages and modules
LAYERS = {
    p.stem
    for p in (ROOT / "busque").iterdir()
    if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
}

# layer -> the layers it must never import (a layer is busque's top-level package or module,
# or `pipelines`)
FORBIDDEN = {
    "models": {"serve", "api", "jobs", "pipelines", "cli", "runtime", "doors", "web"},
    "pipelines": {"serve", "api", "cli", "doors", "web"},
    "jobs": {"api", "serve", "pipelines", "cli", "runtime"},
    "api": {"serve", "cli", "doors"},
    # The front doors translate to busque's API: they build on it, never the other way round.
    "doors": {"serve", "cli", "pipelines"},
    "media": {"serve", "api", "jobs", "pipelines", "cli", "runtime"},
    "index": {"serve", "api", "jobs", "pipelines", "cli", "runtime"},
    "faces": {"serve", "api", "jobs", "pipelines", "cli", "runtime"},
    "storage": {"serve", "api", "jobs", "pipelines", "cli", "runtime", "models", "media"},
    "db": {"serve", "api", "jobs", "pipelines", "cli", "runtime", "models", "media", "faces"},
    "runtime": {"serve", "api", "cli"},
    "serve": {"cli"},
    # Checks about the cluster (busque/cluster.py): settings and Ray start-up only.
    "cluster": {"serve", "api", "jobs", "pipelines", "cli", "runtime"},
    # The metrics interface every layer may record through (busque/metrics.py): it imports
    # nothing of busque (the Ray implementation is busque/serve/metrics.py).
    "metrics": {
        "serve",
        "api",
        "jobs",
        "models",
        "media",
        "index",
        "faces",
        "storage",
        "db",
        "auth",
        "runtime",
        "cli",
        "pipelines",
        "config",
        "cluster",
        "ray_start",
        "grpc",
        "testing",
    },
    # The Python client (busque/client/) ships to users' machines: it imports nothing else of
    # busque (LAYERS is every top-level package and module, new ones too).
    "client": (LAYERS | {"pipelines"}) - {"client"},
}
# Modules the pipelines' library code may not import: the composition root imports their job
# kinds, so only their entry points (command.py, __main__.py) start from it.
PIPELINE_ENTRY_POINTS = ("command", "__main__")


def modules() -> dict[str, Path]:
    found = {}
    for path in [*ROOT.glob("busque/**/*.py"), *ROOT.glob("pipelines/**/*.py")]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            wanted = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        if _type_checking_only(node, parents):
            continue
        for target in wanted:
            while target and target not in known:  # `from a.b import c`: c is a name in a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
    return targets


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "busque" and len(parts) > 1 else parts[0]


def test_layers_import_only_downward():
    broken = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in sorted(targets)
        if layer(target) in FORBIDDEN.get(layer(source), ())
    ]
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


def test_only_tests_and_benchmarks_use_the_testing_kit():
    """busque.testing (throwaway servers, tiny models, the app started for a test) is for tests
    and benchmarks: no module of the service or the pipelines imports it."""
    broken = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        if layer(source) != "testing"
        for target in sorted(targets)
        if layer(target) == "testing"
    ]
    assert not broken, "\n".join(broken)


def test_pipeline_code_is_handed_the_root():
    broken = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        if source.startswith("pipelines.")
        and source.rpartition(".")[2] not in PIPELINE_ENTRY_POINTS
        for target in sorted(targets)
        if target == "busque.runtime"
    ]
    assert not broken, "\n".join(broken)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_can_fail():
    """The rules above see what they are meant to see: a cycle, a function-level import, and a
    layer breach in code written for the purpose."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    known = modules()
    fake = ROOT / "busque" / "models" / "_probe_for_test_layers.py"
    fake.write_text("def f():\n    from busque.serve.app import build_app\n")
    try:
        found = imports("busque.models._probe_for_test_layers", fake, known)
    finally:
        fake.unlink()
    assert found == {"busque.serve.app"}
    assert layer("busque.serve.app") in FORBIDDEN["models"]
