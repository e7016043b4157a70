"""``python -m cove.runtime.inspect FILE.py OUT.json``: write the file's manifest as JSON.

The server runs this in a separate process at deploy time, so user code never runs in
the server's own process. On failure it writes ``{"error": "..."}`` and exits 1 (the
result goes to a file because user code may print while it is imported).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from cove.errors import CoveError


def main() -> None:
    path, out = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        from cove.sdk.manifest import load_module, module_manifest

        module = load_module(path)
        manifest = module_manifest(module.__name__)
    except CoveError as exc:
        out.write_text(json.dumps({"error": exc.message}))
        sys.exit(1)
    except BaseException as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" ({path.name}, line {last[0].lineno})" if last else ""
        out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}{where}"}))
        sys.exit(1)
    out.write_text(json.dumps(manifest))


if __name__ == "__main__":
    main()
