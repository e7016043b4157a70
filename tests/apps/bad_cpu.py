from cove import application, function


@application()
@function(cpu=100)
def too_big() -> str:
    return "never"
