"""Name -> factory registries with "did you mean" errors (models, datasets, methods)."""
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

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: Dict[str, Callable[..., Any]] = {}

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

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
