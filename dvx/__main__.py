"""``python -m dvx``: the command line."""

from .cli.main import run

run()
