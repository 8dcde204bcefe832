#!/usr/bin/env bash
# The run command: set up what is missing, then run the demo (tests/demo.py):
# the local control plane, a registry, a chart repository and Git remotes
# seeded from examples/, the syncer and the operator; the releases become
# Ready, a newer image tag is pushed and automation commits and upgrades it.
# Runs until Ctrl-C, which stops everything it started.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash hack/setup.sh
exec .venv/bin/python -m tests.demo --workdir "$repo/.run/demo" "$@"
