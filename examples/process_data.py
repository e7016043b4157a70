"""Process data: an application with several arguments, called with multipart/form-data.

Each argument is one form part holding its JSON value (a ``str`` argument may also be sent
as plain text). ``precision`` has a default, so its part may be left out::

    curl -F code=@examples/process_data.py http://127.0.0.1:8900/applications
    curl -X POST 'http://127.0.0.1:8900/applications/process_data?wait=30' \\
         -F 'numbers=[1.5, 2.25, 3.125]' -F 'operation="mean"' -F 'precision=2'
    # {"operation":"mean","count":3,"result":2.29}

The entry point hands the arithmetic to another function, ``compute``, which runs in its
own container. An unknown operation fails the whole request at once with ``RequestError``
(no retries: retrying cannot fix a bad input).
"""

import math
from typing import Annotated

from pydantic import BaseModel, Field

from cove import RequestError, application, function

OPERATIONS = ("sum", "mean", "min", "max", "stdev")


class Result(BaseModel):
    operation: str
    count: int
    result: float


@function(description="Applies one operation to a list of numbers.")
def compute(numbers: list[float], operation: str) -> float:
    if operation == "sum":
        return math.fsum(numbers)
    if not numbers:
        raise RequestError(f"operation {operation!r} needs at least one number")
    if operation == "mean":
        return math.fsum(numbers) / len(numbers)
    if operation == "min":
        return min(numbers)
    if operation == "max":
        return max(numbers)
    mean = math.fsum(numbers) / len(numbers)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in numbers) / len(numbers))


@application()
@function(description="Sums, averages, or finds the extremes of a list of numbers.")
def process_data(
    numbers: list[float],
    operation: Annotated[str, Field(examples=["mean"])],  # the sample `cove deploy` prints
    precision: int = 2,
) -> Result:
    if operation not in OPERATIONS:
        raise RequestError(
            f"unknown operation {operation!r}; choose one of {', '.join(OPERATIONS)}"
        )
    if not 0 <= precision <= 12:
        raise RequestError(f"precision must be from 0 to 12, got {precision}")
    value = compute(numbers, operation)
    return Result(operation=operation, count=len(numbers), result=round(value, precision))


if __name__ == "__main__":
    from cove import run_local_application

    print(run_local_application(process_data, [1.5, 2.25, 3.125], "mean").output())
