"""A stand-in for ``nvidia-smi`` that replays a recorded session (tests only).

Run as ``python fake_nvidia_smi.py DATA_FILE [nvidia-smi arguments]``; DATA_FILE holds the
sections ``-L``, ``--query-gpu ... --format=csv`` (with header and units), the same with
``noheader,nounits`` and plain ``nvidia-smi``, separated by lines of ``---``
(see nvidia-smi-h100.txt). ``--query-gpu=FIELDS`` prints the requested fields in the
requested order, taken from the csv section, honouring ``noheader`` and ``nounits``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def sections(path: str) -> list[str]:
    parts = re.split(r"^---\s*$", Path(path).read_text(), flags=re.MULTILINE)
    return [p.strip("\n") for p in parts]


def query(csv: str, fields: list[str], options: set[str]) -> int:
    header, *rows = [line for line in csv.splitlines() if line.strip()]
    names: list[str] = []
    units: list[str] = []
    for column in header.split(","):
        m = re.fullmatch(r"\s*([^\[]+?)\s*(\[[^\]]*\])?\s*", column)
        assert m is not None
        names.append(m.group(1))
        units.append(m.group(2) or "")
    for field in fields:
        if field not in names:
            print(f'Field "{field}" is not a valid field to query.', file=sys.stderr)
            return 2
    wanted = [names.index(f) for f in fields]
    if "noheader" not in options:
        labels = [
            f"{names[i]} {units[i]}".strip() if "nounits" not in options else names[i]
            for i in wanted
        ]
        print(", ".join(labels))
    for row in rows:
        values = [v.strip() for v in row.split(",")]
        out = []
        for i in wanted:
            value = values[i]
            if "nounits" in options and units[i]:
                value = value.split()[0]
            out.append(value)
        print(", ".join(out))
    return 0


def main(argv: list[str]) -> int:
    data, *args = argv
    listing, csv, _, plain = [*sections(data), "", "", "", ""][:4]
    if not args:
        print(plain)
        return 0
    if args == ["-L"]:
        print(listing)
        return 0
    fields: list[str] = []
    options: set[str] = set()
    for arg in args:
        if arg.startswith("--query-gpu="):
            fields = [f.strip() for f in arg.split("=", 1)[1].split(",")]
        elif arg.startswith("--format="):
            options = set(arg.split("=", 1)[1].split(","))
        else:
            print(f"Invalid combination of input arguments: {arg}", file=sys.stderr)
            return 2
    if not fields or "csv" not in options:
        print("Invalid combination of input arguments.", file=sys.stderr)
        return 2
    return query(csv, fields, options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
