"""Code written for the Tensorlake SDK runs on Cove unchanged: ``tensorlake.applications``
served by Cove.

:func:`install` puts an import finder first on ``sys.meta_path`` that answers
``import tensorlake`` and ``import tensorlake.applications`` with modules of Cove's own
objects (``tensorlake.applications.function is cove.function``), whether or not the real
``tensorlake`` package is installed: the finder runs before the ones that search
``sys.path``, and a real ``tensorlake`` imported earlier is dropped from ``sys.modules``.
Other ``tensorlake.*`` modules are not served: importing one raises ``ModuleNotFoundError``
saying so.

Cove's code loader (:func:`cove.sdk.manifest.load_module`) installs it before it imports a
user's file, so it holds in every process Cove starts (deploy-time inspection, templates,
containers, Ray actors) and in ``cove run``; ``import cove.tensorlake`` installs it in a
process of your own. See docs/tensorlake.md.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

#: The public names of ``tensorlake.applications`` (its ``interface.__all__``), each
#: served as the Cove object of the same name.
APPLICATIONS_NAMES: tuple[str, ...] = (
    "application",
    "ApplicationCapability",
    "cls",
    "run_local_application",
    "run_remote_application",
    "function",
    "DeserializationError",
    "File",
    "Function",
    "Future",
    "Headers",
    "HttpBody",
    "FunctionError",
    "TimeoutError",
    "FunctionProgress",
    "Image",
    "InternalError",
    "RemoteAPIError",
    "Request",
    "RequestContext",
    "RequestFailed",
    "RequestState",
    "RequestError",
    "RequestNotFinished",
    "Retries",
    "RETURN_WHEN",
    "SDKUsageError",
    "SerializationError",
    "Logger",
    "TensorlakeException",
    "TensorlakeError",
)
SERVED = ("tensorlake", "tensorlake.applications")
_MARK = "__cove_alias__"


class _TensorlakeFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the two served modules; refuses the rest of ``tensorlake``."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in SERVED:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        if fullname.startswith("tensorlake."):
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: on Cove, only tensorlake.applications is "
                "available (served by Cove; see docs/tensorlake.md)",
                name=fullname,
            )
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        import cove

        setattr(module, _MARK, True)
        module.__path__ = []  # a package (for the import system), with nothing on disk
        if module.__name__ == "tensorlake":
            module.__doc__ = "The Tensorlake SDK's package name, served by Cove."
            module.Image = cove.Image  # type: ignore[attr-defined]
            module.__all__ = ["Image"]  # type: ignore[attr-defined]
            return
        module.__doc__ = "Cove's implementation of the Tensorlake Applications SDK."
        for name in APPLICATIONS_NAMES:
            setattr(module, name, getattr(cove, name))
        module.__all__ = list(APPLICATIONS_NAMES)  # type: ignore[attr-defined]


_FINDER = _TensorlakeFinder()


def install() -> None:
    """Serve ``tensorlake`` and ``tensorlake.applications`` from Cove in this process
    (idempotent)."""
    if not any(isinstance(f, _TensorlakeFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _FINDER)
    for name in [n for n in sys.modules if n == "tensorlake" or n.startswith("tensorlake.")]:
        if not getattr(sys.modules[name], _MARK, False):
            del sys.modules[name]  # the real package, imported before: Cove's wins from now


def installed() -> bool:
    """Whether :func:`install` ran in this process."""
    return any(isinstance(f, _TensorlakeFinder) for f in sys.meta_path)
