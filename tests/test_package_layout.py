"""The package's layers: no module imports (directly or through others) a module that imports
it back, lazy imports inside functions included. A cycle means two modules share a job that
belongs in a third (README's map; STYLE.md 10)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gpuconv"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set) -> set:
    """gpuconv modules that `path` imports anywhere in its text."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            targets = [root] + [f"{root}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def test_no_import_cycles():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: imports(p, set(paths)) for m, p in paths.items()}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    graph = {m: {t for t in ts if not (m.startswith(t + ".") and paths[t].name == "__init__.py")}
             for m, ts in graph.items()}
    cycles = []

    def visit(node, stack, on_stack, done):
        on_stack.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt in on_stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, stack, on_stack, done)
        stack.pop()
        on_stack.discard(node)
        done.add(node)

    done = set()
    for m in sorted(graph):
        if m not in done:
            visit(m, [], set(), done)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_backends_are_packages_with_one_job_per_module():
    backends = PACKAGE / "backends"
    assert sorted(p.name for p in backends.iterdir() if p.suffix == ".py") == ["__init__.py"]
    assert (backends / "numpy" / "__init__.py").is_file() and (backends / "cuda" / "__init__.py").is_file()
