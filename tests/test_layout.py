"""The import graph of m3po_sb3 keeps its layers: history and theory, then models, agents, callbacks, the run
tooling and the package's entry points; no agent imports another agent or the run tooling; no cycles."""

import ast
import importlib
import pickle
from functools import cache
from pathlib import Path

import pytest

from m3po_sb3._moved import MOVED_MODULES

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "m3po_sb3"
# Each subpackage's layer: a module may import its own subpackage and the layers below its own.
LAYERS = {"_moved": 0, "history": 0, "theory": 0, "models": 1, "agents": 2, "callbacks": 3, "run": 4}
TOP = max(LAYERS.values()) + 1  # m3po_sb3/__init__.py and the thin command-line modules
# What an agent module may import from its own package: the shared modules and the base class.
AGENT_BASES = {"m3po_sb3.agents", "m3po_sb3.agents.common", "m3po_sb3.agents.buffers", "m3po_sb3.agents.history_sac"}
MAX_LAYERS = 6  # the layers above, plus the package's entry points
# The longest chain of modules today (an entry point, three of run/, two agents, two models, two of history/):
# a new module may sit beside the others, not lengthen the chain.
MAX_MODULE_CHAIN = 11


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imports_of(module: str) -> set[str]:
    """:return: the m3po_sb3 modules ``module`` imports, anywhere in its code (an imported name that is a module counts as that module)"""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES and name != module}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 and parts[1] in LAYERS else TOP


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else ""


@cache
def depth(module: str) -> int:
    """:return: the modules on the longest import chain from ``module`` (1: it imports none)"""
    return 1 + max((depth(imported) for imported in imports_of(module)), default=0)


def test_the_graph_sees_the_layout():
    assert {"m3po_sb3.agents.m3po", "m3po_sb3.run.registry", "m3po_sb3.history.encoder"} <= MODULES.keys()
    assert "m3po_sb3.models.networks" in imports_of("m3po_sb3.agents.m3po")
    assert "m3po_sb3.history.encoder" in imports_of("m3po_sb3.agents.m3po")
    assert "m3po_sb3.run.train" in imports_of("m3po_sb3.run.sweep")  # `from m3po_sb3.run import folders, train`, in a function


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_upward_or_sideways(module):
    for imported in imports_of(module):
        same_package = subpackage(imported) == subpackage(module) != ""
        assert same_package or layer(imported) < layer(module), f"{module} (layer {layer(module)}) imports {imported} (layer {layer(imported)})"


@pytest.mark.parametrize("module", sorted(name for name in MODULES if subpackage(name) == "agents"))
def test_no_agent_imports_another_agent_or_the_run_tooling(module):
    for imported in imports_of(module):
        assert subpackage(imported) != "agents" or imported in AGENT_BASES, f"{module} imports the agent {imported}"
        assert subpackage(imported) != "run", f"{module} imports the run tooling {imported}"


def test_no_import_cycles_and_no_longer_chains():
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for imported in imports_of(module):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in MODULES:
        visit(module)
    assert max(depth(module) for module in MODULES) <= MAX_MODULE_CHAIN
    assert len({layer(module) for module in MODULES}) <= MAX_LAYERS


@pytest.mark.parametrize("old, new", sorted(MOVED_MODULES.items()))
def test_a_class_pickled_under_its_old_module_path_loads(old, new):
    # What an agent, checkpoint or buffer saved before the split holds: a reference by module path and name.
    module = importlib.import_module(new)
    name, obj = next((name, obj) for name, obj in sorted(vars(module).items()) if callable(obj) and getattr(obj, "__module__", None) == new)
    reference = f"c{old}\n{name}\n.".encode()  # pickle's GLOBAL opcode, as protocol 0 writes it
    assert pickle.loads(reference) is obj


def test_the_old_history_and_theory_modules_are_packages_with_their_names():
    assert pickle.loads(b"cm3po_sb3.history\nHistoryFeaturesExtractor\n.") is importlib.import_module("m3po_sb3.history.encoder").HistoryFeaturesExtractor
    assert pickle.loads(b"cm3po_sb3.theory\nBoundCheck\n.") is importlib.import_module("m3po_sb3.theory.exact").BoundCheck
