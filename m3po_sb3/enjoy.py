"""``python -m m3po_sb3.enjoy``: the command line of :mod:`m3po_sb3.run.enjoy`."""

from m3po_sb3.run.enjoy import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main()
