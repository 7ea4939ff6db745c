"""Methods by name: DFAD and the ways of training a model that share its engine."""
from .base import METHODS, Method, freeze
from .dafl import DAFL
from .dfad import DFAD, RandomGenerator
from .kd import KD
from .supervised import Supervised

__all__ = ["METHODS", "Method", "freeze", "DAFL", "DFAD", "KD", "RandomGenerator", "Supervised"]
