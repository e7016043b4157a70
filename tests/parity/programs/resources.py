"""Small resource values: the SDK accepts any value above zero."""

from tensorlake.applications import application, function


@application()
@function(cpu=0.5, memory=0.25, ephemeral_disk=1.0)
def small(x: int) -> int:
    return x + 1


CASES = [{"name": "small_resources", "app": "small", "args": [1]}]
