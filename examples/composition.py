"""Composing functions: calls, map, reduce, futures, tail calls and ``async``.

Every ``@function`` call below is a durable call that runs in that function's own
container; the caller blocks until it returns (or gets a ``Future`` to wait on later)::

    curl -F code=@examples/composition.py http://127.0.0.1:8900/applications

    # a function calling functions
    curl -X POST 'http://127.0.0.1:8900/applications/hypotenuse?wait=30' \\
         -F 'a=3' -F 'b=4'                                        # 5.0
    # map + reduce
    curl -X POST 'http://127.0.0.1:8900/applications/sum_of_squares?wait=30' \\
         -H 'Content-Type: application/json' -d '[1, 2, 3, 4]'    # 30
    # several futures at once, then Future.wait
    curl -X POST 'http://127.0.0.1:8900/applications/statistics?wait=30' \\
         -H 'Content-Type: application/json' -d '[4, 8, 15, 16, 23, 42]'
    # tail calls: each step hands its output over to the next call
    curl -X POST 'http://127.0.0.1:8900/applications/collatz_steps?wait=30' \\
         -H 'Content-Type: application/json' -d '27'              # 111
    # async functions
    curl -X POST 'http://127.0.0.1:8900/applications/word_lengths?wait=30' \\
         -H 'Content-Type: application/json' -d '["durable", "calls"]'
"""

import asyncio
import math

from cove import RETURN_WHEN, Future, RequestError, application, function

# -- a function calling functions ----------------------------------------------------------


@function()
def square(x: float) -> float:
    return x * x


@function()
def add(a: float, b: float) -> float:
    return a + b


@application()
@function(description="The hypotenuse of a right triangle with legs a and b.")
def hypotenuse(a: float, b: float) -> float:
    return math.sqrt(add(square(a), square(b)))


# -- map and reduce ------------------------------------------------------------------------


@application()
@function(description="Squares every number in parallel, then adds them up.")
def sum_of_squares(numbers: list[int]) -> int:
    squares = square.map(numbers)  # one call per number, results in order
    return int(add.reduce(squares, 0))  # add(add(add(0, s0), s1), s2) ...


# -- futures -------------------------------------------------------------------------------


@function()
def total(numbers: list[int]) -> int:
    return sum(numbers)


@function()
def extremes(numbers: list[int]) -> tuple[int, int]:
    return min(numbers), max(numbers)


@function()
def is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


@application()
@function(description="Runs several calls at the same time and waits for all of them.")
def statistics(numbers: list[int]) -> dict[str, float | int | list[int]]:
    if not numbers:
        raise RequestError("statistics needs at least one number")
    total_f = total.future(numbers)  # not started yet
    extremes_f = extremes.future(numbers)
    primes_f = is_prime.future.map(numbers)  # one future for a whole map
    _done, pending = Future.wait(
        [total_f, extremes_f, primes_f], timeout=60, return_when=RETURN_WHEN.ALL_COMPLETED
    )
    if pending:
        raise RequestError(f"{len(pending)} calls did not finish in time")
    low, high = extremes_f.result()
    return {
        "count": len(numbers),
        "total": total_f.result(),
        "mean": total_f.result() / len(numbers),
        "min": low,
        "max": high,
        "primes": [n for n, prime in zip(numbers, primes_f.result(), strict=True) if prime],
    }


# -- tail calls ----------------------------------------------------------------------------


@function()
def collatz(n: int, steps: int) -> int | Future:
    if n == 1:
        return steps
    following = n // 2 if n % 2 == 0 else 3 * n + 1
    # Returning an unstarted future is a tail call: this call finishes now and its output
    # will be the output of the next step, so no call stays blocked on a long chain.
    return collatz.future(following, steps + 1)


@application()
@function(description="How many Collatz steps it takes to get from n to 1.")
def collatz_steps(n: int) -> int:
    if n < 1:
        raise RequestError(f"n must be a positive integer, got {n}")
    return collatz.future(n, 0)  # type: ignore[return-value]  # a tail call


# -- async functions -----------------------------------------------------------------------


@function()
async def word_length(word: str) -> int:
    await asyncio.sleep(0)  # stand-in for I/O
    return len(word)


@application()
@function(description="Word lengths, computed by async calls running concurrently.")
async def word_lengths(words: list[str]) -> dict[str, int]:
    if not words:
        return {}
    first = await word_length(words[0])  # await one call
    rest = await asyncio.gather(*(word_length.future(w) for w in words[1:]))  # or many
    return dict(zip(words, [first, *rest], strict=True))


if __name__ == "__main__":
    from cove import run_local_application

    print(run_local_application(hypotenuse, 3, 4).output())
    print(run_local_application(sum_of_squares, [1, 2, 3, 4]).output())
    print(run_local_application(statistics, [4, 8, 15, 16, 23, 42]).output())
    print(run_local_application(collatz_steps, 27).output())
    print(run_local_application(word_lengths, ["durable", "calls"]).output())
