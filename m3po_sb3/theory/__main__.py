"""``python -m m3po_sb3.theory``."""

from m3po_sb3.theory.cli import main

main()
