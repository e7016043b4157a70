"""Run code written for the Tensorlake SDK on Cove, without a server.

``python -m cove.tensorlake FILE.py [ARGS...]`` runs FILE.py as ``python FILE.py`` would
(as ``__main__``, with ``sys.argv`` set to ``[FILE.py, *ARGS]``), its
``from tensorlake.applications import ...`` imports served by Cove: the usual
``if __name__ == "__main__": run_local_application(app, ...)`` block runs on Cove's local
runner. ``import cove.tensorlake`` in a process of your own does the same for the imports
that follow it. See docs/tensorlake.md.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from cove.sdk.tensorlake_alias import install

install()

USAGE = "usage: python -m cove.tensorlake FILE.py [ARGS...]"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + (__doc__ or "").strip().split("\n\n")[1])
        sys.exit(0 if args else 2)
    path = Path(args[0])
    if not path.is_file():
        print(f"{USAGE}\nerror: {path} is not a file", file=sys.stderr)
        sys.exit(2)
    sys.argv = [str(path), *args[1:]]
    sys.path.insert(0, str(path.resolve().parent))  # as `python FILE.py` puts its folder
    runpy.run_path(str(path), run_name="__main__")


if __name__ == "__main__":
    main()
