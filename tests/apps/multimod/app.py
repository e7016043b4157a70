"""An application spread over modules: a sibling module, a package with a subpackage
module, and a data file beside them. Deployed as a bundle of this folder."""

import helpers
from pkg import shout
from pkg.sub import exclaim

from cove import application, function


@function()
def decorate(text: str) -> str:
    return exclaim(shout(text)) + helpers.signature()


@application()
@function()
def multimod(name: str) -> str:
    return decorate(helpers.greet(name))  # in a container of its own
