"""Applications the soak (``python -m benchmarks.soak``) deploys to a Cove server.

This file is uploaded as-is (``POST /applications``), so it imports only ``cove`` and
the standard library. Each application is one kind of the soak's mixed load.
"""

from cove import File, RequestContext, Retries, application, function


@application(tags={"suite": "soak"})
@function(description="A round trip: a request with no child call.")
def soak_noop() -> int:
    return 0


@function(max_containers=2, description="The trivial child function of soak_map.")
def soak_inc(x: int) -> int:
    return x + 1


@application(tags={"suite": "soak"})
@function(description="A map: n parallel calls of soak_inc.")
def soak_map(n: int) -> int:
    return sum(soak_inc.map(range(n)))


@application(tags={"suite": "soak"})
@function(description="A file in, a file out: both blobs once larger than 16 KiB.")
def soak_file(f: File) -> File:
    return File(f.content[::-1], "application/octet-stream")


@function(retries=Retries(max_retries=2, initial_delay=0.01), description="Fails once.")
def soak_flaky(x: int) -> int:
    state = RequestContext.get().state
    tries = state.get("tries", 0) or 0
    state.set("tries", tries + 1)
    if tries < 1:
        raise RuntimeError("the first attempt fails")
    return x * 2


@application(tags={"suite": "soak"})
@function(description="A retry: one child call that fails once, then succeeds.")
def soak_retry(x: int) -> int:
    return soak_flaky(x)


@application(tags={"suite": "soak"})
@function(description="A failure: the request fails with the error it raises.")
def soak_fail(reason: str) -> str:
    raise RuntimeError(reason)
