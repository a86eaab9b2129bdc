"""The package's import graph: no module imports, even for type checking or lazily, a
module that imports it back (issue 29: components.py used to import the Trainer class)."""

import ast
import pathlib

import opifex

ROOT = pathlib.Path(opifex.__file__).parent


def import_graph() -> dict[str, set[str]]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        parts = ("opifex", *f.relative_to(ROOT).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def module_of(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, f in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opifex"):
                deps |= {module_of(f"{node.module}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {module_of(a.name) for a in node.names if a.name.startswith("opifex")}
        graph[name] = deps - {name, ""}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_the_imports_it_should():
    g = import_graph()
    assert "opifex.core.training.engine" in g["opifex.core.training.trainer"]
    assert "opifex.core.training.history" in g["opifex.core.training.components"]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_a_cycle_is_found_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# every ``from ... import ...`` line of the seed-004 reference pages, as written there; the
# modules the split files re-export from must keep these working
SEED_004_IMPORTS = {
    "opifex.core.conditions": ["DirichletBC"],
    "opifex.core.physics.losses": ["PhysicsInformedLoss"],
    "opifex.core.training.config": ["TrainingConfig"],
    "opifex.core.training.physics_configs": ["ConservationConfig", "MultiScaleConfig"],
    "opifex.core.training.trainer": ["Trainer"],
    "opifex.geometry": ["ComplexDomain"],
    "opifex.neural.base": ["StandardMLP"],
    "opifex.neural.quantum": ["QuantumMLP"],
    "opifex.optimization": ["MetaOptimizer"],
    "opifex.training": ["PhysicsInformedLoss", "PhysicsLossConfig"],
    "opifex.training.basic_trainer": ["BasicTrainer", "ModularTrainer"],
    "opifex.training.components": ["FlexibleOptimizerFactory", "TrainingComponentBase"],
    "opifex.training.metrics": ["AdvancedMetricsCollector", "TrainingState"],
    "opifex.training.recovery": ["ErrorRecoveryManager"],
}


def test_seed_004_import_lines_work():
    import importlib

    for module, names in SEED_004_IMPORTS.items():
        mod = importlib.import_module(module)
        missing = [n for n in names if not hasattr(mod, n)]
        assert not missing, f"from {module} import {', '.join(missing)} fails"
        assert all(isinstance(getattr(mod, n), type) for n in names)
