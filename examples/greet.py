"""Greet: an application with a single ``str`` argument.

A single argument is sent as the JSON request body::

    curl -F code=@examples/greet.py http://127.0.0.1:8900/applications
    curl -X POST 'http://127.0.0.1:8900/applications/greet?wait=30' \\
         -H 'Content-Type: application/json' -d '"Ada"'
    # "Hello, Ada!"

Locally::

    from cove import run_local_application
    from greet import greet

    run_local_application(greet, "Ada").output()  # "Hello, Ada!"
"""

from cove import application, function


@application()
@function(description="Greets someone by name.")
def greet(name: str) -> str:
    name = name.strip() or "stranger"
    return f"Hello, {name}!"


if __name__ == "__main__":
    from cove import run_local_application

    print(run_local_application(greet, "Ada").output())
