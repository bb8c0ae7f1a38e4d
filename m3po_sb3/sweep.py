"""``python -m m3po_sb3.sweep``: the command line of :mod:`m3po_sb3.run.sweep`."""

from m3po_sb3.run.sweep import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main()
