from cove import application, function


@application()
@function(cpu=0)
def too_small() -> str:
    return "never"
