"""Console logging of the ``brb`` logger (torch-free, so the console script sets it up before any heavy import)."""

from __future__ import annotations

import logging
import sys


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (it may be redirected after set-up)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(quiet: bool = False) -> None:
    """Messages of the ``brb`` logger to the current stderr, INFO and up (WARNING and up when ``quiet``);
    the console script calls this, a Python user configures logging as usual."""
    logger = logging.getLogger("brb")
    for handler in [h for h in logger.handlers if getattr(h, "_brb_console", False)]:
        logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler._brb_console = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
