"""Methods by name: DFAD and the ways of training a model that share its engine."""
from .base import METHODS, Method, freeze
from .dfad import DFAD
from .supervised import Supervised

__all__ = ["METHODS", "Method", "freeze", "DFAD", "Supervised"]
