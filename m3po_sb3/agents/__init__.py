"""The agents: M3PO and its variants, and the baselines (history-SAC, PEARL), each a stable-baselines3 algorithm.

An agent module imports :mod:`m3po_sb3.history`, :mod:`m3po_sb3.models` and the shared modules of this package
(:mod:`~m3po_sb3.agents.common`, :mod:`~m3po_sb3.agents.buffers` and the base class
:mod:`~m3po_sb3.agents.history_sac`), never another agent or the run tooling of :mod:`m3po_sb3.run`.
"""
