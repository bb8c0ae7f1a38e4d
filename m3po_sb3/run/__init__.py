"""The run tooling behind ``python -m m3po_sb3.train``: presets and flags (:mod:`~m3po_sb3.run.config`), the
``--algo`` registry, run folders, checkpoints, training, sweeps, replays and plots."""
