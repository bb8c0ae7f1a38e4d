"""``python -m m3po_sb3.plotting``: the command line of :mod:`m3po_sb3.run.plotting`."""

from m3po_sb3.run.plotting import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main()
