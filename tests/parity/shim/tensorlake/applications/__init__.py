"""``tensorlake.applications`` served by Cove's public names, for the parity suite only.

A name Cove lacks is missing here too, so a program that needs it fails to import on Cove,
as it would for a user."""

from cove import *  # noqa: F403
from cove import __all__  # noqa: F401
