"""Classes: one-time, per-container initialization with ``@cls``.

``__init__(self)`` runs once when a container of the class starts (here it builds a
lookup table of every Roman numeral from 1 to 3999); each call of a method decorated with
``@function()`` then reuses it. Call methods through an instance handle, without ``self``:
``RomanNumerals().to_roman(7)``. Building the handle is cheap, the real instance lives in
the method's container::

    curl -F code=@examples/classes.py http://127.0.0.1:8900/applications
    curl -X POST 'http://127.0.0.1:8900/applications/to_roman_numerals?wait=30' \\
         -H 'Content-Type: application/json' -d '[1999, 2024, 4]'
    # ["MCMXCIX","MMXXIV","IV"]
    curl -X POST 'http://127.0.0.1:8900/applications/from_roman_numerals?wait=30' \\
         -H 'Content-Type: application/json' -d '["mcmxcix", "IV"]'
    # {"mcmxcix":1999,"IV":4}
"""

import os
from typing import Annotated

from pydantic import Field

from cove import RequestError, application, cls, function

_SYMBOLS = (
    (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
    (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
)  # fmt: skip


def _encode(n: int) -> str:
    out = []
    for value, symbol in _SYMBOLS:
        count, n = divmod(n, value)
        out.append(symbol * count)
    return "".join(out)


@cls()
class RomanNumerals:
    """Converts numbers to and from Roman numerals with precomputed tables."""

    def __init__(self) -> None:
        # The expensive part, done once per container rather than once per call.
        self.to_table = {n: _encode(n) for n in range(1, 4000)}
        self.from_table = {numeral: n for n, numeral in self.to_table.items()}
        self.built_by = os.getpid()

    @function(description="A number from 1 to 3999 as a Roman numeral.")
    def to_roman(self, n: int) -> str:
        numeral = self.to_table.get(n)
        if numeral is None:
            raise RequestError(f"{n} cannot be written in Roman numerals (1 to 3999 only)")
        return numeral

    @function(description="The number a Roman numeral stands for.")
    def from_roman(self, numeral: str) -> int:
        n = self.from_table.get(numeral.strip().upper())
        if n is None:
            raise RequestError(f"{numeral!r} is not a valid Roman numeral")
        return n

    @function(description="How big the tables are, and which process built them.")
    def table_info(self) -> dict[str, int]:
        return {"entries": len(self.to_table), "built_by": self.built_by}


@application()
@function(description="Converts numbers to Roman numerals, in parallel.")
def to_roman_numerals(numbers: list[int]) -> list[str]:
    return RomanNumerals().to_roman.map(numbers)


@application()
@function(description="Converts Roman numerals to numbers.")
def from_roman_numerals(
    numerals: Annotated[list[str], Field(examples=[["MCMXCIX", "IV"]])],
) -> dict[str, int]:
    converter = RomanNumerals()
    return {numeral: converter.from_roman(numeral) for numeral in numerals}


@application()
@function(description="Checks that the converter's tables were built once per container.")
def roman_table_info(calls: int = 3) -> dict[str, int]:
    # Sequential calls reuse the same warm container, hence the same instance.
    infos = [RomanNumerals().table_info() for _ in range(calls)]
    return {"entries": infos[0]["entries"], "builders": len({i["built_by"] for i in infos})}


if __name__ == "__main__":
    from cove import run_local_application

    print(run_local_application(to_roman_numerals, [1999, 2024, 4]).output())
    print(run_local_application(from_roman_numerals, ["mcmxcix", "IV"]).output())
