"""Model-predictive control: sampling-based planners and the stable-baselines3 plumbing of planning agents."""

from m3po_sb3.planning.planners import CEM, MPPI, PLANNERS, Planner, RandomShooting

__all__ = ["Planner", "RandomShooting", "CEM", "MPPI", "PLANNERS"]
