"""``@function()`` written above ``@application()``: the SDK takes either order."""

from tensorlake.applications import application, function


@function()
@application()
def reversed_order(x: int) -> int:
    return x * 2


CASES = [{"name": "function_above_application", "app": "reversed_order", "args": [21]}]
