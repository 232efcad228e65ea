"""``python -m hypero`` is the ``hypero`` command."""

from hypero.cli import main

main()
