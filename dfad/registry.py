"""Name -> factory registries with "did you mean" errors, and the config keys whose values name them.

Every name a config accepts (task, dataset, models, method, losses, optimisers, schedules,
augmentations, precision) lives in one registry, next to what it names. A registry created with
`config_keys` announces which config keys must name one of its entries; `check_config_names` (called
by config validation) asks the registries, so config.py re-lists no names and imports none of the
modules that own them.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterable, Optional

from .errors import DfadError


def suggest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """A named collection of factories.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("lenet5")
    ... def lenet5(num_classes=10): ...
    """

    def __init__(self, kind: str, config_keys: Iterable[str] = (), listed: bool = False):
        """`config_keys`: the config keys whose values must name an entry. `listed`: a wrong one is
        reported as "KEY must be 'a' or 'b'" (short, closed lists), otherwise as "unknown KIND"."""
        self.kind = kind
        self.listed = listed
        self._factories: Dict[str, Callable[..., Any]] = {}
        for key in config_keys:
            register_config_key(key, self.check)

    def register(self, name: Optional[str] = None):
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            key = name or factory.__name__
            if key in self._factories:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._factories[key] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._factories:
            raise DfadError(
                f"unknown {self.kind} '{name}'{suggest(name, self._factories)}; "
                f"choose one of: {', '.join(sorted(self._factories))}"
            )
        return self._factories[name]

    def build(self, name: str, /, **kwargs: Any) -> Any:
        factory = self.get(name)
        try:
            return factory(**kwargs)
        except TypeError as exc:  # wrong keyword for this factory
            shown = {k: v if isinstance(v, (int, float, str, bool, type(None))) else type(v).__name__
                     for k, v in kwargs.items()}
            raise DfadError(f"cannot build {self.kind} '{name}' with arguments {shown}: {exc}") from exc

    def check(self, name: str, key: str) -> None:
        """A clear config error unless `name` (the value of config key `key`) is registered here."""
        if self.listed and name not in self._factories:
            names = list(self._factories)  # registration order
            choices = (" or ".join(f"'{n}'" for n in names) if len(names) == 2 else f"one of {names}")
            raise DfadError(f"config: {key} must be {choices}, got '{name}'{suggest(name, names)}")
        self.get(name)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories


# config key -> check(value, key); filled by the registries (and models' arch check) as they are created.
_CONFIG_CHECKS: Dict[str, Callable[[str, str], None]] = {}


def register_config_key(key: str, check: Callable[[str, str], None]) -> None:
    if key in _CONFIG_CHECKS:
        raise ValueError(f"config key '{key}' is claimed by two registries")
    _CONFIG_CHECKS[key] = check


def check_config_names(values: Dict[str, str]) -> None:
    """Each config key's value against the registry that claimed the key. Every key must be claimed:
    importing the package imports every registry's module (dfad/__init__.py)."""
    for key, value in values.items():
        if key not in _CONFIG_CHECKS:
            raise RuntimeError(f"no registry claims config key '{key}' (is its module imported?)")
        _CONFIG_CHECKS[key](value, key)


# config key naming an entry -> check(name, options_key, options) of the options given with that
# entry (e.g. distill.method and its distill.method_args); filled by the modules that own the entries.
_OPTION_CHECKS: Dict[str, Callable[[str, str, dict], None]] = {}


def register_options_check(key: str, check: Callable[[str, str, dict], None]) -> None:
    if key in _OPTION_CHECKS:
        raise ValueError(f"the options of config key '{key}' are checked twice")
    _OPTION_CHECKS[key] = check


def check_config_options(values: Dict[str, tuple]) -> None:
    """For each config key naming an entry: (name, options key, options) checked by its owner."""
    for key, (name, options_key, options) in values.items():
        if key not in _OPTION_CHECKS:
            raise RuntimeError(f"nothing checks the options of config key '{key}' (is its module imported?)")
        _OPTION_CHECKS[key](name, options_key, options)
