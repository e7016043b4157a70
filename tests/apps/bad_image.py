from cove import Image, application, function

BROKEN = Image(name="broken").run("echo preparing the broken image; exit 3")


@application()
@function(image=BROKEN)
def never_deployed() -> str:
    return "no"
