#!/usr/bin/env bash
# The test command: set up what is missing, then run the whole suite (unit and
# integration). The integration tests start their own local control plane,
# Git remotes, registries and chart servers on 127.0.0.1 and stop them after.
# Extra arguments go to pytest, e.g. `hack/test.sh -k helm -x`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash hack/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
