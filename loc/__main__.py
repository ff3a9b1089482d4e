"""``python -m loc ...`` = the ``loc`` command (e.g. without installing, PYTHONPATH=.)."""

from .cli import app

app()
