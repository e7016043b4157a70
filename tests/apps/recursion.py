"""Recursion and fan-out deeper than the pool: must not deadlock with max_containers=1."""

from cove import application, function


@function(max_containers=1)
def fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@application()
@function(max_containers=1)
def fibonacci(n: int) -> int:
    return fib(n)


@function(max_containers=1)
def leaf(x: int) -> int:
    return x * x


@function(max_containers=1)
def middle(x: int) -> int:
    return sum(leaf.map(range(x)))


@application()
@function(max_containers=1)
def nested_fanout(n: int) -> list[int]:
    return middle.map(range(n))
