#!/usr/bin/env bash
# The run command: set up what is missing, start the local control plane,
# install the HelmRelease CRD and print the kubeconfig path. Runs until
# Ctrl-C, which stops everything it started.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash hack/setup.sh
mkdir -p .run
exec .venv/bin/python -m tests.cluster up --workdir "$repo/.run/cluster" "$@"
