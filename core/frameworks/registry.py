"""The framework registry: which training libraries the platform knows, and what each one can do.

A framework is one plug-in: a module `core/frameworks/<anything>_model.py` (found by its name, imported
on first use) or any object handed to `register_framework` (a test's tiny framework). It declares its
name, the Triton backends its exported artifact runs on, the modules its MLflow model imports at load
time, whether it trains on a GPU and in epochs, its own spec rules, and `fit` / `load` /
`export_triton_artifact`. The spec's allowed frameworks and backends, the pyfunc pip requirements and
the train step's GPU request all come from here, so adding a framework is one new file (plus its
library in the lock files).

Plug-in modules import their library inside their functions: every environment (the serving one has no
`transformers`) validates specs of every framework, and that must not load torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from core.spec.release import TRITON_BACKENDS, TritonBackend

if TYPE_CHECKING:
    import pandas as pd

    from core.bundle import BundleInfo, Predictor
    from core.spec.model import ModelSpec

PLUGIN_SUFFIX = "_model"
_PACKAGE = "core.frameworks"
_ATTRIBUTES: Mapping[str, type] = MappingProxyType(
    {"NAME": str, "BACKENDS": frozenset, "PIP_MODULES": tuple, "GPU": bool, "EPOCHS": bool}
)
_FUNCTIONS = ("check_spec", "fit", "load", "export_triton_artifact")


class Framework(Protocol):
    """What a framework plug-in provides (a module satisfies it with module-level names)."""

    NAME: str
    """The spec's `framework` value; also recorded in every bundle it writes."""
    BACKENDS: frozenset[TritonBackend]
    """Triton backends that can serve the exported artifact (`python` runs it in local mode)."""
    PIP_MODULES: tuple[str, ...]
    """Modules the loaded model imports; the MLflow model requires their distributions, as installed."""
    GPU: bool
    """The train step asks the cluster for a GPU."""
    EPOCHS: bool
    """Trains in epochs, so the spec's `training.max_epochs` applies."""

    def check_spec(self, spec: ModelSpec) -> None:
        """Framework-specific spec rules; raise `core.spec.base.FieldProblem` naming the field."""

    def fit(
        self, spec: ModelSpec, train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any], out_dir: Path
    ) -> tuple[Predictor, float]:
        """Fit on `train` (early stopping on `valid`), write the bundle into `out_dir`; return the
        predictor loaded from it and its validation score (`base.validation_score`)."""

    def load(self, folder: Path, info: BundleInfo) -> Predictor:
        """The predictor of a bundle this framework wrote."""

    def export_triton_artifact(self, folder: Path, info: BundleInfo, dest_dir: Path) -> str:
        """Write the served artifact into a Triton version folder; return its file name."""


class _Registry:
    """Plug-ins by name: the package's `*_model` modules, found on first use, plus registered extras."""

    def __init__(self) -> None:
        self._plugins: dict[str, Framework] = {}
        self._stand_ins: set[str] = set()
        """Names a registered plug-in took over from a package plug-in (until it is removed)."""
        self._discovered = False

    def all(self) -> Mapping[str, Framework]:
        if not self._discovered:
            self._discovered = True  # set first: a broken plug-in must not be re-imported on every call
            for module in _plugin_module_names():
                plugin = importlib.import_module(f"{_PACKAGE}.{module}")
                if getattr(plugin, "NAME", None) not in self._stand_ins:
                    self.add(plugin, replace=False)
        return MappingProxyType(self._plugins)

    def add(self, plugin: Any, replace: bool) -> Framework:
        checked = _checked(plugin)
        known = self._plugins.get(checked.NAME)
        if known is not None and known is not plugin:
            if not replace:
                raise ValueError(f"framework {checked.NAME!r} is already registered by {_where(known)}")
            self._stand_ins.add(checked.NAME)
        self._plugins[checked.NAME] = checked
        return checked

    def remove(self, name: str) -> None:
        """Forget `name`; the next lookup rediscovers the package's plug-ins (so a stand-in that replaced
        one of them gives way to the original again)."""
        self._plugins.pop(name, None)
        self._stand_ins.discard(name)
        self._discovered = False


_REGISTRY = _Registry()


def frameworks() -> Mapping[str, Framework]:
    """Every known framework plug-in by name (read-only)."""
    return _REGISTRY.all()


def framework_names() -> tuple[str, ...]:
    return tuple(sorted(frameworks()))


def get_framework(name: str) -> Framework:
    try:
        return frameworks()[name]
    except KeyError:
        known = ", ".join(framework_names())
        raise ValueError(f"unknown framework {name!r}: expected one of {known}") from None


def register_framework(plugin: Any, replace: bool = False) -> Framework:
    """Add a plug-in defined elsewhere (a module or any object with the `Framework` names); `replace`
    lets it stand in for a known framework of the same name. Returns the plug-in."""
    frameworks()  # discover first, so a later discovery cannot clash with what is registered here
    return _REGISTRY.add(plugin, replace)


def unregister_framework(name: str) -> None:
    """Forget a registered plug-in (a package plug-in of that name comes back on the next lookup)."""
    _REGISTRY.remove(name)


def _plugin_module_names() -> list[str]:
    folder = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name.endswith(PLUGIN_SUFFIX))


def _checked(plugin: Any) -> Framework:
    where = _where(plugin)
    for name, kind in _ATTRIBUTES.items():
        value = getattr(plugin, name, None)
        if not isinstance(value, kind):
            raise TypeError(f"framework plug-in {where}: {name} must be a {kind.__name__}, got {value!r}")
    missing = [name for name in _FUNCTIONS if not callable(getattr(plugin, name, None))]
    if missing:
        raise TypeError(f"framework plug-in {where}: define {', '.join(missing)}")
    unknown = sorted(set(plugin.BACKENDS) - set(TRITON_BACKENDS))
    if unknown or not plugin.BACKENDS:
        raise TypeError(
            f"framework plug-in {where}: BACKENDS must name Triton backends among "
            f"{', '.join(TRITON_BACKENDS)} (got {sorted(plugin.BACKENDS)})"
        )
    return plugin


def _where(plugin: Any) -> str:
    """A module's name, else the plug-in's NAME: what a message about it should say."""
    return getattr(plugin, "__name__", None) or repr(getattr(plugin, "NAME", type(plugin).__name__))
