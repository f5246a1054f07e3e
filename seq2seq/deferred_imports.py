"""Modules that importing TensorFlow would load but this package never uses.

Keras 3 imports `matplotlib.pyplot` when it is imported (for its image
gallery plots) whenever matplotlib is installed, and matplotlib is one of
this package's dependencies (`DumpAttention` and the evaluation summaries
draw on matplotlib's Agg canvas, without pyplot). Loading pyplot took 0.2-0.5
CPU-seconds of each process's start-up on a 2-core machine
(`benchmarks/startup_time.py`), so `defer_pyplot` puts a stand-in into
`sys.modules` that imports the real module on first use.
"""

import importlib
import importlib.machinery
import importlib.util
import sys
import types

__all__ = ["DeferredModule", "defer_pyplot"]


class DeferredModule(types.ModuleType):
    """Stands in `sys.modules` for a module until one of its attributes is read.

    Any attribute that is not the stand-in's own (`__name__`, `__spec__`,
    `__file__`, ...) imports the real module, which then replaces the
    stand-in in `sys.modules`, and is read from it; the stand-in keeps
    forwarding for whoever imported it earlier. Its `__spec__` and
    `__file__` are the real module's, so that code which scans
    `sys.modules` for a file (AutoGraph, `inspect.getmodule`) does not load
    it.

    Args:
      spec: The real module's `ModuleSpec`.
    """

    def __init__(self, spec):
        super().__init__(spec.name)
        self.__spec__ = spec
        self.__loader__ = spec.loader
        if spec.has_location:
            self.__file__ = spec.origin

    def __getattr__(self, attr):
        real = self.__dict__.get("_deferred_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            self.__dict__["_deferred_real"] = real
        return getattr(real, attr)


def defer_pyplot():
    """Defers `matplotlib.pyplot` until it is used.

    Does nothing when pyplot is already imported or matplotlib is not
    installed. Returns whether a stand-in was put in place.
    """
    name = "matplotlib.pyplot"
    if name in sys.modules:
        return False
    # Found without importing matplotlib itself.
    package = importlib.util.find_spec("matplotlib")
    if package is None or not package.submodule_search_locations:
        return False
    spec = importlib.machinery.PathFinder.find_spec(
        name, package.submodule_search_locations
    )
    if spec is None:
        return False
    sys.modules[name] = DeferredModule(spec)
    return True
