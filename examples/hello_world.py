"""Hello world: an application that takes no arguments and returns a string.

Run it in this process::

    from cove import run_local_application
    from hello_world import hello_world

    print(run_local_application(hello_world).output())  # Hello, world!

Or deploy it to a Cove server (``cove server``) and call it with an empty body::

    curl -F code=@examples/hello_world.py http://127.0.0.1:8900/applications
    curl -X POST 'http://127.0.0.1:8900/applications/hello_world?wait=30'
    # "Hello, world!"

The output is JSON serialized according to the return type hint, so a ``str`` comes
back as a JSON string.
"""

from cove import application, function


@application(tags={"example": "hello_world"})
@function(description="Says hello to the world.")
def hello_world() -> str:
    return "Hello, world!"


if __name__ == "__main__":
    from cove import run_local_application

    print(run_local_application(hello_world).output())
