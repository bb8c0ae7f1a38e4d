"""Short CPU demo: M3PO on HalfCheetahFwdBwd-v0 with the small ``demo`` preset (a few minutes on 2 cores).

    python examples/demo.py

writes a new run folder ``logs/m3po/HalfCheetahFwdBwd-v0_N`` (``model.zip``, ``eval.csv``,
``learning_curve.png``, ...). Any flag of ``python -m m3po_sb3.train`` may be added (e.g. ``--seed 1``,
``--algo m2po``, ``--timesteps 5000``, ``--out DIR``). Each evaluation runs the same 10 episodes (30 task
periods), enough for the curve to tell the policies apart from episode luck.
"""

import sys

from m3po_sb3.run.train import main

# One torch thread: the demo's small networks gain little from a second one, and a busy machine makes two
# threads contend (tens of times slower).
DEMO_ARGS = [
    "--env", "HalfCheetahFwdBwd-v0", "--algo", "m3po", "--preset", "demo",
    "--eval-freq", "500", "--eval-episodes", "10", "--torch-threads", "1",
]  # fmt: skip

if __name__ == "__main__":
    # The user's flags come last, so they override the demo's (argparse keeps the last occurrence).
    main([*DEMO_ARGS, *sys.argv[1:]])
