"""The command line (``dvx``); :func:`dvx.cli.main.run` is the entry point.

A Ctrl-C while the command line's modules are still loading (the first ~60 ms) would show a traceback of the
import machinery: in the ``dvx`` process (the console script or ``python -m dvx``), until ``run`` takes over,
an interrupt ends the process with the same one line as later ones. A program that imports this package for
its own use keeps its SIGINT handling.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_loading(signum: int, frame: object) -> None:
    sys.stderr.write("dvx: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


if os.path.basename(sys.argv[0]) in ("dvx", "-m") and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_loading)
