"""Histories for meta-RL: their flat layout, the wrapper that makes them an env's observation, and the GRU
encoder that reads them."""

from m3po_sb3.history.encoder import HistoryEncoder, HistoryFeaturesExtractor, history_policy_kwargs, stacked_gru_final_state
from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.history.wrapper import HistoryObservation

__all__ = ["HistoryLayout", "HistoryObservation", "HistoryEncoder", "HistoryFeaturesExtractor", "history_policy_kwargs", "stacked_gru_final_state"]
