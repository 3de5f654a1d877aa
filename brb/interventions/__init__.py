"""Interventions: hooks that act on any method declaring the capabilities they need (brb/methods/base.py)."""

from brb.interventions.brb import BRB

__all__ = ["BRB"]
