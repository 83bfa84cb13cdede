"""The import graph of the pancakes package and the Slicer library, read from the source with ast.

Every import counts, also those inside functions: a cycle hidden behind a lazy import is
still a cycle to whoever reads the code. Only explicit imports are edges (importing
``pancakes.a.b`` does not add an edge to ``pancakes.a``), because the package
``__init__`` files import lazily by design (``pancakes.Pancakes``).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

MODULE_DIR = Path(__file__).resolve().parents[3] / "PancakesSegment"
CORE_DIR = MODULE_DIR / "pancakes"
LIB_DIR = MODULE_DIR / "PancakesSegmentLib"
# Not the runtime: what trains models and what scores them. pancakes.metrics re-exports
# pancakes.evaluation.metrics under the name the README shows.
NOT_RUNTIME = ("pancakes.training", "pancakes.evaluation", "pancakes.metrics")


def module_name(path: Path, root: Path = MODULE_DIR) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> Dict[str, Path]:
    return {module_name(p): p for p in sorted(CORE_DIR.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return (MODULE_DIR / Path(*name.split(".")) / "__init__.py").is_file()


def imported_names(path: Path) -> List[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved; from-imports of
    submodules give the submodule)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not _is_package(target):
                found.append(target)
                continue
            # from a package: a submodule is an edge to it; any other name (``__version__``) to the package
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_sub = (MODULE_DIR / Path(*sub.split("."))).with_suffix(".py").is_file() or _is_package(sub)
                found.append(sub if is_sub else target)
    return found


def core_graph() -> Dict[str, Set[str]]:
    """pancakes module -> the pancakes modules it imports."""
    modules = core_modules()
    return {name: {t for t in imported_names(path) if t in modules and t != name} for name, path in modules.items()}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph is a DAG."""
    state: Dict[str, int] = {}  # 1 on the stack, 2 done
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def is_runtime(name: str) -> bool:
    return not any(name == n or name.startswith(n + ".") for n in NOT_RUNTIME)
