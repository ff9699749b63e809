"""The package's architecture: imports run one way (no circles), and the torch-free modules stay torch-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dfdetect

PACKAGE = Path(dfdetect.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(lazy: bool = True) -> dict[str, set[str]]:
    """Module -> the dfdetect modules it imports, at the top or lazily inside a function: a lazy import that
    closes a circle is still a circle (the factory may import its backends lazily because none imports it).
    Without `lazy`, only the imports that run when the module is loaded."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree) if lazy else tree.body:
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            for target in targets:
                # `from dfdetect.models import densenet` names a module; `from dfdetect.models import X` a member.
                found = target if target in modules else None
                if found and found != name:
                    graph[name].add(found)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*stack[stack.index(successor) :], successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_circles() -> None:
    graph = import_graph()
    assert "dfdetect.runtime.base" in graph and graph["dfdetect.runtime.torch_backend"]  # the walk saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    """Guards the test above: the finder does report a circle when there is one."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_runtime_base_and_factory_import_no_backend() -> None:
    graph, loaded = import_graph(), import_graph(lazy=False)
    backends = {"dfdetect.runtime.torch_backend", "dfdetect.runtime.onnx_backend", "dfdetect.runtime.openvino_backend"}
    for module in ("dfdetect.runtime.base", "dfdetect.runtime"):
        assert not graph[module] & backends, module
    assert graph["dfdetect.runtime.factory"] >= backends  # the factory alone knows every backend...
    assert not loaded["dfdetect.runtime.factory"] & backends  # ...and imports each only when it is chosen
    assert not graph["dfdetect.models.registry"] & {"dfdetect.models.densenet", "dfdetect.models.efficientnet"}
    assert not graph["dfdetect.data.gpu_pipeline"] & {"dfdetect.runtime", "dfdetect.runtime.base"}


TORCH_FREE = ["errors", "conventions", "preprocessing", "run_folder", "stores", "runtime.base", "faces"]
"""The README's torch-free basics, the scoring runtime's base, and face framing (which reads a faces file)."""


def test_the_torch_free_modules_load_without_torch() -> None:
    modules = ", ".join(f"dfdetect.{name}" for name in TORCH_FREE)
    code = f"import sys, {modules}; print(sorted(name for name in ('torch', 'torchvision') if name in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
