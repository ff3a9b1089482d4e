"""``python -m simgen ...`` = the ``simgen`` command (e.g. without installing, PYTHONPATH=.)."""

from .cli import main

main()
