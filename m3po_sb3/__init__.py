"""M3PO (Meta-Model-Based Meta-Policy Optimization) and its variants on stable-baselines3."""

from m3po_sb3 import _moved
from m3po_sb3.agents.history_sac import HistorySAC
from m3po_sb3.agents.m3po import M2PO, M3PO, ModelRolloutCallback
from m3po_sb3.agents.pearl import PEARL
from m3po_sb3.callbacks.diagnostics import DiagnosticsCallback
from m3po_sb3.callbacks.evaluation import MetaEvalCallback
from m3po_sb3.history import HistoryFeaturesExtractor, HistoryLayout, HistoryObservation, history_policy_kwargs
from m3po_sb3.models.networks import DynamicsModel, MetaDynamicsModel
from m3po_sb3.run.folders import load_run

_moved.install()  # files saved before the package was split name classes by their old module paths

__all__ = [
    "M3PO",
    "M2PO",
    "HistorySAC",
    "ModelRolloutCallback",
    "PEARL",
    "HistoryLayout",
    "HistoryObservation",
    "HistoryFeaturesExtractor",
    "history_policy_kwargs",
    "DynamicsModel",
    "MetaDynamicsModel",
    "MetaEvalCallback",
    "DiagnosticsCallback",
    "load_run",
]
