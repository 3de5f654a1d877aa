"""Interventions: hooks of the training engine that act on any method declaring what they need."""

from brb.interventions.brb import BRB, SupportsBRB

__all__ = ["BRB", "SupportsBRB"]
