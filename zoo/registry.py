"""Discovers plugins through the ``zoo.plugins`` entry-point group and collects their specs.

Built-in families load through the same entry points as third-party packages. A plugin that
fails to import, raises in a hook or returns something invalid is recorded (``zoo plugins``
shows it) and every other plugin keeps working; ``ZOO_STRICT_PLUGINS=1`` turns those records
into errors for plugin authors. ``ZOO_LOAD_PLUGINS`` (comma list; empty = built-ins only)
limits which third-party plugins load.
"""

from __future__ import annotations

import difflib
import os
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

import pluggy

from zoo import __version__ as zoo_version, hookspecs
from zoo.errors import PluginError, ZooError
from zoo.specs import DatasetSpec, ExporterSpec, ModelSpec, TaskSpec

GROUP = "zoo.plugins"
BUILTIN_DIST = "zoo"

_KINDS = {
    "zoo_models": ("model", ModelSpec),
    "zoo_datasets": ("dataset", DatasetSpec),
    "zoo_tasks": ("task", TaskSpec),
    "zoo_exporters": ("exporter", ExporterSpec),
}


@dataclass
class PluginInfo:
    name: str
    dist: str
    version: str
    builtin: bool
    provides: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class Registry:
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    exporters: dict[str, ExporterSpec] = field(default_factory=dict)
    owner: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- lookups -----------------------------------------------------------------------------
    def model(self, name: str) -> ModelSpec:
        """A model by name, alias or family (a family resolves to its default member)."""
        key = name.strip().lower()
        if key in self.models:
            return self.models[key]
        for spec in self.models.values():
            if key in spec.aliases:
                return spec
        members = [s for s in self.models.values() if s.family == key]
        defaults = [s for s in members if s.family_default]
        if len(defaults) == 1:
            return defaults[0]
        if len(members) == 1:
            return members[0]
        choices = sorted(
            set(self.models)
            | {s.family for s in self.models.values()}
            | {a for s in self.models.values() for a in s.aliases}
        )
        close = difflib.get_close_matches(key, choices, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo list` shows them all"
        if members:
            hint = f"; family {key!r} has several members: {', '.join(s.name for s in members)}"
        broken = [p.name for p in self.plugins.values() if p.errors]
        if broken:
            hint += f" (plugins with errors: {', '.join(broken)}; see `zoo plugins`)"
        raise ZooError(f"unknown model {name!r}{hint}")

    def task(self, name: str) -> TaskSpec:
        if name not in self.tasks:
            raise ZooError(f"no plugin provides task {name!r}; installed tasks: {', '.join(sorted(self.tasks))}")
        return self.tasks[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            close = difflib.get_close_matches(name, list(self.datasets), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ZooError(f"unknown dataset {name!r}{hint}")
        return self.datasets[name]

    def exporter(self, name: str) -> ExporterSpec:
        if name not in self.exporters:
            raise ZooError(f"unknown export format {name!r}; available: {', '.join(sorted(self.exporters))}")
        return self.exporters[name]

    def errors(self) -> list[str]:
        return [f"{p.name}: {e}" for p in self.plugins.values() for e in p.errors]

    # -- collecting ----------------------------------------------------------------------------
    def _add(self, info: PluginInfo, hook: str, item: object) -> None:
        kind, cls = _KINDS[hook]
        if not isinstance(item, cls):
            raise PluginError(f"{hook} returned {type(item).__name__}, expected {cls.__name__}")
        item.validate()
        table = getattr(self, kind + "s")
        if item.name in table:
            other = self.owner[(kind, item.name)]
            raise PluginError(
                f"{kind} {item.name!r} is claimed by both plugin {other!r} and plugin {info.name!r}; "
                f"keeping {other!r}'s"
            )
        table[item.name] = item
        self.owner[(kind, item.name)] = info.name
        info.provides.setdefault(kind, []).append(item.name)


def _strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _selected(name: str, builtin: bool) -> bool:
    wanted = os.environ.get("ZOO_LOAD_PLUGINS")
    if builtin or wanted is None:
        return True
    return name in {w.strip() for w in wanted.split(",") if w.strip()}


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({os.path.basename(last[0].filename)}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_registry() -> Registry:
    """Load every selected plugin once, isolating failures plugin by plugin."""
    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    strict = _strict()
    seen: set[tuple[str, str]] = set()

    # Built-ins first so that a third party cannot shadow them by load order.
    eps = sorted(
        entry_points(group=GROUP),
        key=lambda ep: (getattr(ep.dist, "name", "") != BUILTIN_DIST, ep.name),
    )
    for ep in eps:
        dist = getattr(ep.dist, "name", "?") or "?"
        # A venv whose lib64 links to lib lists every distribution twice.
        if (dist, ep.name) in seen:
            continue
        seen.add((dist, ep.name))
        builtin = dist == BUILTIN_DIST
        if not _selected(ep.name, builtin):
            continue
        name = ep.name if builtin or ep.name not in reg.plugins else f"{dist}:{ep.name}"
        info = PluginInfo(name, dist, getattr(ep.dist, "version", "?") or "?", builtin)
        reg.plugins[name] = info
        try:
            plugin = ep.load()
            wanted = getattr(plugin, "ZOO_API_VERSION", hookspecs.API_VERSION)
            if not isinstance(wanted, int) or wanted > hookspecs.API_VERSION:
                raise PluginError(f"needs zoo plugin API version {wanted}, this zoo {zoo_version} has "
                                  f"{hookspecs.API_VERSION}; upgrade zoo")
            pm.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not take the others down
            info.errors.append(f"failed to load: {_describe(exc)}")
            if strict:
                raise PluginError(f"plugin {name!r} failed to load: {_describe(exc)}") from exc
            continue

    for hook in _KINDS:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            info = reg.plugins[impl.plugin_name]
            try:
                items = impl.function()
                if not isinstance(items, (list, tuple)):
                    raise PluginError(f"{hook} must return a list, got {type(items).__name__}")
            except Exception as exc:
                info.errors.append(f"{hook} raised {_describe(exc)}")
                if strict:
                    raise PluginError(f"plugin {info.name!r}: {hook} raised {_describe(exc)}") from exc
                continue
            for item in items:
                try:
                    reg._add(info, hook, item)
                except (PluginError, ValueError) as exc:
                    info.errors.append(f"{hook}: {exc}")
                    if strict:
                        raise PluginError(f"plugin {info.name!r}: {hook}: {exc}") from exc
    return reg


@lru_cache(maxsize=1)
def registry() -> Registry:
    return load_registry()
