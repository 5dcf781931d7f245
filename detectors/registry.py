"""The detector registry: every detector registers itself, and is checked when it does.

A detector module decorates its class with `@register`; `registry()` imports
every module of the `detectors` package once (the online models excepted:
they are not detectors) and returns the registry. Everything that lists
detectors is derived from it, so adding a detector is one new file plus its
`[detectors.TABLE]` table in `config/shopguard.toml` and its types in
`config/policy.toml`:

- the violation catalog (`Registry.catalog`), which the policy must cover;
- the typed `[detectors.*]` configuration (`Registry.config_struct`), validated
  at load time like every other section;
- the detectors each detect shard runs (`Registry.build`).

Registration checks the shape the engine relies on (like Osprey's
`UDFRegistry.register`), so a malformed detector fails at import, with its
name, not on the first event:

>>> @register
... class Broken:
...     table = "broken"
Traceback (most recent call last):
...
TypeError: detector Broken: missing class attribute `name` (its permanent id, e.g. `broken_v1`)
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from typing import Any

import msgspec

_ID = re.compile(r"^[a-z][a-z0-9_]*_v[0-9]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Modules of the package that hold no detector.
_NOT_DETECTORS = ("detectors.base", "detectors.registry", "detectors.models")


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered detector: its class, config table and the violation types it can issue."""

    cls: type
    table: str
    config_type: type
    violation_types: tuple[str, ...]
    joined_types: frozenset[type]  # read in the `shops` stage (empty: a one-stage detector)
    shared_types: frozenset[type]  # update its shard-wide state
    detector_ids: dict[str, str]  # violation type -> the detector id its violations carry

    def build(self, config: Any) -> Any:
        return self.cls(config)


class Registry:
    """Detectors by config table, in registration order."""

    def __init__(self) -> None:
        self._by_table: dict[str, Registration] = {}

    def register(self, cls: type) -> type:
        """Class decorator: check `cls` against the `Detector` protocol and add it."""
        entry = _checked(cls)
        clash = self._by_table.get(entry.table)
        if clash is not None and clash.cls is not cls:
            raise TypeError(f"detector {cls.__name__}: table `{entry.table}` is already "
                            f"{clash.cls.__name__}'s")
        for other in self._by_table.values():
            if other.cls is cls:
                continue
            if other.cls.name == cls.name:
                raise TypeError(f"detector {cls.__name__}: id `{cls.name}` is already {other.cls.__name__}'s")
            shared = set(other.violation_types) & set(entry.violation_types)
            if shared:
                raise TypeError(f"detector {cls.__name__}: violation type `{sorted(shared)[0]}` is already "
                                f"issued by {other.cls.__name__}")
        self._by_table[entry.table] = entry
        return cls

    @property
    def entries(self) -> tuple[Registration, ...]:
        return tuple(self._by_table.values())

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self._by_table)

    def detector_ids(self) -> dict[str, tuple[str, ...]]:
        """Every detector id violations can carry -> the types it issues (for metric label values)."""
        out: dict[str, list[str]] = {}
        for entry in self._by_table.values():
            for vtype, detector in entry.detector_ids.items():
                out.setdefault(detector, []).append(vtype)
        return {detector: tuple(types) for detector, types in out.items()}

    @property
    def catalog(self) -> tuple[str, ...]:
        """Every violation type some detector can issue, in registration order."""
        return tuple(t for entry in self._by_table.values() for t in entry.violation_types)

    def __getitem__(self, table: str) -> Registration:
        return self._by_table[table]

    def config_struct(self, module: str) -> type:
        """A frozen msgspec struct with one typed field per `[detectors.TABLE]` table.

        `module` must bind it under the name `DetectorsConfig`, so that pickle
        (a cluster's processes receive the config) finds the class there.
        """
        fields = [(entry.table, entry.config_type) for entry in self._by_table.values()]
        return msgspec.defstruct("DetectorsConfig", fields, frozen=True, forbid_unknown_fields=True, module=module)

    def build(self, configs: Any) -> list[tuple[Registration, Any]]:
        """Every registered detector, configured from the typed `[detectors]` section, with its registration."""
        return [(entry, entry.build(getattr(configs, table))) for table, entry in self._by_table.items()]


_REGISTRY = Registry()
_loaded = False


def register(cls: type) -> type:
    """Register a detector class (a decorator; see the module docstring)."""
    return _REGISTRY.register(cls)


def registry() -> Registry:
    """The registry, with every detector module of the package imported (once)."""
    global _loaded
    if not _loaded:
        import detectors

        for module in pkgutil.walk_packages(detectors.__path__, "detectors."):
            if not module.name.startswith(_NOT_DETECTORS):
                importlib.import_module(module.name)
        _loaded = True
    return _REGISTRY


def _checked(cls: type) -> Registration:
    def need(attr: str, what: str) -> Any:
        if not hasattr(cls, attr):
            raise TypeError(f"detector {cls.__name__}: missing class attribute `{attr}` ({what})")
        return getattr(cls, attr)

    def fail(message: str) -> None:
        raise TypeError(f"detector {cls.__name__}: {message}")

    name = need("name", f"its permanent id, e.g. `{getattr(cls, 'table', 'detector')}_v1`")
    if not isinstance(name, str) or not _ID.match(name):
        fail(f"id `{name}` must look like `word_v1` (ids are permanent: add _v2, never rename)")
    table = need("table", "the name of its `[detectors.TABLE]` configuration table")
    if not isinstance(table, str) or not _NAME.match(table):
        fail(f"table `{table}` must be a snake_case name")
    types = need("violation_types", "the catalog types it can issue")
    if not isinstance(types, tuple) or not types or not all(isinstance(t, str) and _NAME.match(t) for t in types):
        fail("`violation_types` must be a non-empty tuple of snake_case catalog names")
    events = need("event_types", "the contract event classes it reads (empty: fed by its own step)")
    from pipeline.contract.events import Event

    if not isinstance(events, frozenset) or not all(isinstance(e, type) and issubclass(e, Event) for e in events):
        fail("`event_types` must be a frozenset of contract event classes")
    config_type = need("Config", "the msgspec struct of its configuration table")
    if not (isinstance(config_type, type) and issubclass(config_type, msgspec.Struct)):
        fail("`Config` must be a msgspec.Struct")
    struct = config_type.__struct_config__
    if not (struct.frozen and struct.forbid_unknown_fields):
        fail("`Config` must be frozen and forbid unknown fields (a typo in the config must stop the job)")
    idle = need("idle_eviction_ms", "how long idle entity state is kept, in ms; None for the job's default")
    if idle is not None and not (isinstance(idle, int) and idle > 0):
        fail("`idle_eviction_ms` must be None or a positive int of milliseconds")
    for method in ("entity", "on_event"):
        if not callable(getattr(cls, method, None)):
            fail(f"missing method `{method}`")
    joined = _optional_types(cls, "joined_types", fail)
    shared = _optional_types(cls, "shared_types", fail)
    if shared and not callable(getattr(cls, "on_shared", None)):
        fail("declares `shared_types` but has no `on_shared(shared, event)`")
    ids = cls.__dict__.get("detector_ids", {t: name for t in types})
    if set(ids) != set(types) or not all(isinstance(i, str) and _ID.match(i) for i in ids.values()):
        fail("`detector_ids` must map each of its violation types to a detector id like `word_v1`")
    return Registration(cls, table, config_type, types, joined, shared, dict(ids))


def _optional_types(cls: type, attr: str, fail) -> frozenset[type]:
    """An optional frozenset of event classes (empty when the class does not declare it)."""
    value = cls.__dict__.get(attr, frozenset())
    if not isinstance(value, frozenset) or not all(isinstance(t, type) for t in value):
        fail(f"`{attr}` must be a frozenset of event classes")
    return value
