"""Run by the python of ``tensorlake==0.5.103`` (never Cove's): the SDK's own deployer,
``deploy_applications``, deploys an application file to the server ``TENSORLAKE_API_URL``
names, uploading each application ``TIMES`` times in one process (the same ZIP and
manifest each time: what the SDK sends when it retries a POST). Prints one JSON line: the
manifest it uploaded for each application, by name. Used by
tests/e2e/test_tensorlake_deploy.py.

``python tensorlake_deployer.py APP_FILE TIMES``
"""

from __future__ import annotations

import json
import os
import sys

from tensorlake.applications.applications import filter_applications
from tensorlake.applications.registry import get_functions
from tensorlake.applications.remote.code.loader import load_code
from tensorlake.applications.remote.deploy import deploy_applications
from tensorlake.applications.remote.manifests.application import create_application_manifest


def main() -> None:
    path, times = os.path.abspath(sys.argv[1]), int(sys.argv[2])
    load_code(path)
    for _ in range(times):
        deploy_applications(path, upgrade_running_requests=False)
    functions = get_functions()
    uploaded = {
        app._name: json.loads(
            create_application_manifest(
                application_function=app, all_functions=functions
            ).model_dump_json()
        )
        for app in filter_applications(functions)
    }
    print(json.dumps(uploaded), flush=True)


if __name__ == "__main__":
    main()
