"""coremltools' generated protobuf classes (`Model_pb2`, `MIL_pb2`), loaded on their own.

`import coremltools` runs its package init, which imports torch and takes about 5 s; the protobuf
modules alone load in well under 0.1 s. Where coremltools is already imported its own modules are
used; otherwise the same files are loaded from coremltools' install folder under a private package
name, so a later `import coremltools` is unaffected.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from bench.errors import EngineUnavailableError

_PACKAGE = "bench.engines.reference._coremltools_proto"


def proto_modules() -> tuple[Any, Any]:
    """(MIL_pb2, Model_pb2)."""
    if "coremltools" in sys.modules:
        from coremltools.proto import MIL_pb2, Model_pb2

        return MIL_pb2, Model_pb2
    package = sys.modules.get(_PACKAGE)
    if package is None:
        spec = importlib.util.find_spec("coremltools")
        if spec is None or not spec.submodule_search_locations:
            raise EngineUnavailableError("coremltools is not installed; it is needed to read .mlpackage files")
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [f"{spec.submodule_search_locations[0]}/proto"]
        sys.modules[_PACKAGE] = package
    mil = importlib.import_module(f"{_PACKAGE}.MIL_pb2")
    model = importlib.import_module(f"{_PACKAGE}.Model_pb2")
    return mil, model
