"""The driver's programs kept on disk as serialized StableHLO (``jax.export``), so that a study shape run before
starts without tracing or lowering its programs in Python; the persistent compilation cache
(:mod:`jaxcollapse.engine.cache`) then skips compiling them.

A program is stored under a SHA-256 key of everything its trace depends on: the jitted function's name, its
static arguments (the kernel's functions by name, the kernel's static config, the mesh's shape and platform),
the tree, shapes, dtypes and shardings of its arguments, the JAX and jaxlib versions, JAX's configuration, the
source of the package itself and the regime tables as they are at run time. Any change to one of them is a new
key, so a stored program is never run for another study shape or another version of the code. The driver stores
programs of the package's own kernels only (:data:`jaxcollapse.core.kernels.BUILT_IN`): another kernel's code is
not in the key. Files live in ``jaxcollapse-programs`` inside the compilation cache's directory and are written
atomically; ``JAXCOLLAPSE_CACHE_DIR=off``, no compilation cache or no ``flatbuffers`` package (``jax.export``'s
format) turns them off. A program that cannot be exported or read back runs as a plain ``jit`` call; one that
cannot be stored runs from its export.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import marshal
import os
import pathlib
import tempfile
from typing import Callable

import jax
import jaxlib
import numpy as np

from .cache import ENV

_LOG = logging.getLogger(__name__)
#: Bumped when the file layout or the key changes.
FORMAT = 1
#: Name of the folder inside the compilation cache's directory.
FOLDER = "jaxcollapse-programs"

#: (function, statics, argument tree and leaves, folder) -> (the function's name, what runs it in this process):
#: within a process the store's key is computed once per program, as ``jit`` traces once per shape.
_LOADED: dict[tuple, tuple[str, Callable]] = {}
_REGISTERED: set[type] = set()


def directory() -> str | None:
    """Where programs are kept: ``<compilation cache>/jaxcollapse-programs``, or ``None`` (off)."""
    if os.environ.get(ENV, "").strip().lower() == "off" or not _serializable():
        return None
    cache = jax.config.jax_compilation_cache_dir
    return os.path.join(cache, FOLDER) if cache else None


@functools.lru_cache(maxsize=1)
def _serializable() -> bool:
    """Whether ``jax.export`` can serialize here (it needs the ``flatbuffers`` package)."""
    return importlib.util.find_spec("flatbuffers") is not None


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """SHA-256 of the package's Python source (every ``.py`` file, in path order)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _name(f) -> str:
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"


def _static(value) -> object:
    """A description of a static argument that is the same in every process."""
    if isinstance(value, jax.sharding.Mesh):
        return ("mesh", value.axis_names, value.devices.shape,
                sorted({(d.platform, d.device_kind) for d in value.devices.flat}))
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return (type(value).__qualname__, [(f, _static(getattr(value, f))) for f in value._fields])
    if callable(value):
        return _name(value)
    return repr(value)


def _leaf(x) -> tuple:
    """What a trace sees of an argument (hashable; its repr is the same in every process)."""
    if isinstance(x, jax.Array):
        return tuple(x.shape), str(x.dtype), bool(x.aval.weak_type), x.sharding
    return type(x).__name__, np.shape(x), str(np.asarray(x).dtype)


def _code(f) -> str:
    """A function's compiled code (which includes its file and line numbers), hashed."""
    code = getattr(f, "__code__", None)
    return hashlib.sha256(marshal.dumps(code)).hexdigest() if code is not None else repr(f)


def _tables() -> list:
    """The regime table and the count kernel's data steps as they are now: they are module-level tables, and a
    program traced after one of them changed at run time must not be read back for a run before the change."""
    from ..core import count, regime_table
    data = sorted((name, _name(f), _code(f)) for name, f in count.DATA.items())
    table = sorted((name, [(f.name, _code(getattr(kind, f.name)) if callable(getattr(kind, f.name))
                            else repr(getattr(kind, f.name))) for f in dataclasses.fields(kind)])
                   for name, kind in regime_table.TABLE.items())
    return [data, table]


def key(fn, args: tuple, statics: dict) -> str:
    """The store's key of ``fn(*args, **statics)`` (hex SHA-256)."""
    leaves, tree = jax.tree.flatten(args)
    described = [FORMAT, _name(fn), sorted((k, _static(v)) for k, v in statics.items()), str(tree),
                 [_leaf(x) for x in leaves], jax.__version__, jaxlib.__version__, _source_digest(), _tables(),
                 bool(jax.config.jax_enable_x64), sorted((k, repr(v)) for k, v in jax.config.values.items())]
    return hashlib.sha256(repr(described).encode()).hexdigest()


def _namedtuples(tree) -> set[type]:
    """The NamedTuple classes of a ``PyTreeDef`` (its states and parameters)."""
    found, todo = set(), [tree]
    while todo:
        t = todo.pop()
        data = t.node_data()
        if data is not None and isinstance(data[0], type) and hasattr(data[0], "_fields"):
            found.add(data[0])
        todo.extend(t.children())
    return found


def _register(classes) -> None:
    for cls in classes:
        if cls not in _REGISTERED:
            try:
                jax.export.register_namedtuple_serialization(
                    cls, serialized_name=f"{cls.__module__}.{cls.__qualname__}")
            except ValueError:      # registered before, by this module or elsewhere
                pass
            _REGISTERED.add(cls)


def _load(path: str):
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        blob = f.read()
    if header.get("format") != FORMAT:
        return None
    return _read(header, blob)


def _read(header: dict, blob: bytes):
    classes = []
    for module, qualname in header["classes"]:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        classes.append(obj)
    _register(classes)
    return jax.export.deserialize(bytearray(blob))


def _store(path: str, exported):
    """Write ``exported`` to ``path`` (when the folder is writable); returns it as read back, which is what a
    later run gets (weak types, for one, are not kept, and the next program's arguments must not depend on
    whether this one was read or traced)."""
    classes = _namedtuples(exported.in_tree) | _namedtuples(exported.out_tree)
    _register(classes)
    blob = exported.serialize()
    header = {"format": FORMAT, "function": exported.fun_name,
              "classes": sorted([c.__module__, c.__qualname__] for c in classes)}
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            f.write(blob)
        os.replace(tmp, path)
    except OSError as err:
        _LOG.info("program not stored in %s (%s)", path, err)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return _read(header, blob)


def call(fn, args: tuple, statics: dict, *, platform: str, donate: tuple[int, ...] = (), store: bool = True):
    """``fn(*args, **statics)`` for a jitted ``fn`` whose static arguments are ``statics``, through the store
    (unless ``store`` is false): read back when stored, else exported and stored (then run from the export, so
    the first run compiles the same program as later ones). ``donate``: indices of ``args`` whose buffers may be
    reused."""
    folder = directory() if store else None
    if folder is None:
        return fn(*args, **statics)
    leaves, tree = jax.tree.flatten(args)
    here = (fn, tuple(sorted(statics.items())), tree, tuple(_leaf(x) for x in leaves), folder)
    if here in _LOADED:
        return _LOADED[here][1](*args)
    k = key(fn, args, statics)
    path = os.path.join(folder, k + ".program")
    exported = None
    try:
        if os.path.exists(path):
            exported = _load(path)
    except Exception as err:      # a damaged or foreign file: export it again
        _LOG.info("stored program %s not read (%s); exporting it again", path, err)
    try:
        if exported is None:
            exported = _store(path, jax.export.export(fn, platforms=(platform,))(*args, **statics))
        run = jax.jit(exported.call, donate_argnums=donate)
        out = run(*args)          # lowering fails here, before anything runs, if it fails
    except Exception as err:
        _LOG.info("%s runs without the program store (%s)", _name(fn), err)
        run = functools.partial(fn, **statics)
        out = run(*args)
    _LOADED[here] = (_name(fn), run)
    return out


def count(fn) -> int:
    """How many programs of ``fn`` (shapes, statics) this process has run through the store."""
    return sum(name == _name(fn) for name, _ in _LOADED.values())
