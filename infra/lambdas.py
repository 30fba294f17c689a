"""Loads a template function's handler from its CodeUri, the way Lambda would (layer on sys.path)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from typing import Any

from infra.stack import ROOT, Stack

SHARED = ROOT / "shared"
if str(SHARED) not in sys.path:
    sys.path.insert(0, str(SHARED))

Handler = Callable[[dict[str, Any], Any], Any]
_IMPORT_LOCK = threading.RLock()


def load_handler(stack: Stack, logical_id: str, container: str = "") -> Handler:
    """Import functions/<CodeUri>/app.py under a unique module name and return its handler.

    A Lambda container runs one invocation at a time, and module state (a Powertools resolver's
    current event, a BatchProcessor's records) relies on that. Callers that invoke a function
    from several threads at once give each thread its own `container`: a separate module."""
    props = stack.functions()[logical_id]
    module_file, attribute = props["Handler"].rsplit(".", 1)
    path = ROOT / props["CodeUri"] / f"{module_file}.py"
    if not path.is_file() and (SHARED / f"{module_file.replace('.', '/')}.py").is_file():
        # Lambda finds a handler module in a layer too (/opt/python, here shared/): imported once,
        # under its own name (such a handler keeps no per-invocation module state)
        with _IMPORT_LOCK:
            return getattr(importlib.import_module(module_file), attribute)
    name = f"lambda_{logical_id}" + (f"__{container}" if container else "")
    # one import at a time: threads (the local gateway, concurrency tests) must never see a
    # module that another thread has registered but not finished running
    with _IMPORT_LOCK:
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            # like Lambda, the function folder is on sys.path so a handler can import its siblings
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    return getattr(module, attribute)


class FakeLambdaContext:
    """The attributes of a Lambda context object that Powertools reads."""

    def __init__(self, function_name: str = "local") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = "local-request"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000
