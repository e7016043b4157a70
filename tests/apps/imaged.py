"""A function in an image of its own (no network needed: the build writes a module)."""

import os
import sys

from cove import Image, application, function

WITH_MODULE = (
    Image(name="with-module")
    .run(
        'python -c "import sysconfig, pathlib; '
        "pathlib.Path(sysconfig.get_paths()['purelib'], 'imgmod.py').write_text('VALUE = 42')\""
    )
    .env("GREETING", "hello from the image")
    .workdir("app")  # relative: inside the image's file tree, like /app
)


@function(image=WITH_MODULE)
def in_image() -> dict[str, object]:
    import imgmod  # only installed in the image

    return {
        "value": imgmod.VALUE,
        "greeting": os.environ.get("GREETING"),
        "prefix": sys.prefix,
        "cwd": os.getcwd(),
    }


@function()
def outside() -> dict[str, object]:
    try:
        import imgmod  # noqa: F401
    except ImportError:
        return {"has_module": False, "greeting": os.environ.get("GREETING")}
    return {"has_module": True, "greeting": os.environ.get("GREETING")}


@application()
@function()
def images_app() -> dict[str, object]:
    return {"in": in_image(), "outside": outside()}
