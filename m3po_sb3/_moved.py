"""Old module paths of ``m3po_sb3`` (before it was split into packages) -> their new place.

Files saved by older versions name classes by the module they were defined in: an agent's ``.zip`` pickles
``policy_kwargs`` and its ``policy_class`` (``m3po_sb3.pearl.PEARLPolicy``), a checkpoint pickles its buffers
(``m3po_sb3.buffers.HistoryReplayBuffer``). The finder below makes Python import an old path as the module that
now holds its contents, so those files load unchanged. (``m3po_sb3.history`` and ``m3po_sb3.theory`` are
packages that export their old names, and need no entry.)
"""

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED_MODULES = {
    "m3po_sb3.buffers": "m3po_sb3.agents.buffers",
    "m3po_sb3.history_sac": "m3po_sb3.agents.history_sac",
    "m3po_sb3.m3po": "m3po_sb3.agents.m3po",
    "m3po_sb3.pearl": "m3po_sb3.agents.pearl",
    "m3po_sb3.dynamics": "m3po_sb3.models.networks",
    "m3po_sb3.rollouts": "m3po_sb3.models.rollouts",
    "m3po_sb3.evaluation": "m3po_sb3.callbacks.evaluation",
    "m3po_sb3.diagnostics": "m3po_sb3.callbacks.diagnostics",
    "m3po_sb3.checkpoint": "m3po_sb3.run.checkpoint",
    "m3po_sb3.runs": "m3po_sb3.run.folders",
    "m3po_sb3.presets": "m3po_sb3.run.config",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The new module is already executed."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds each old path of :data:`MOVED_MODULES` as the module that replaced it."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader())


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once): an old path is the new module, whatever else is installed."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
