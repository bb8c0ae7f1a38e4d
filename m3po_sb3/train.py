"""``python -m m3po_sb3.train``: the command line of :mod:`m3po_sb3.run.train`."""

from m3po_sb3.run.train import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main()
