"""Models by name. Importing this package registers every family."""
from .registry import MODELS, build_model, check_arch, describe_model
from . import convnet, deeplab, generators, lenet, resnet_cifar, resnet_imagenet  # noqa: F401  (registration side effects)
from .profile import count_parameters, count_flops

__all__ = ["MODELS", "build_model", "check_arch", "describe_model", "count_parameters", "count_flops"]
