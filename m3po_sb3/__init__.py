"""M3PO (Meta-Model-Based Meta-Policy Optimization) and its variants on stable-baselines3."""

from m3po_sb3.diagnostics import DiagnosticsCallback
from m3po_sb3.dynamics import DynamicsModel, MetaDynamicsModel
from m3po_sb3.evaluation import MetaEvalCallback
from m3po_sb3.history import HistoryFeaturesExtractor, HistoryLayout, HistoryObservation, history_policy_kwargs
from m3po_sb3.history_sac import HistorySAC
from m3po_sb3.m3po import M2PO, M3PO, ModelRolloutCallback
from m3po_sb3.pearl import PEARL
from m3po_sb3.runs import load_run

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
