#!/usr/bin/env bash
# Everything a fresh machine needs before the project runs or is tested:
# system packages, a Python virtualenv with the package and its test extra,
# and the local cluster's binaries (built once from pinned Go modules, then
# cached under ~/.cache/helm-operator). Safe to run again: each step checks
# first and does nothing when it is already done.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '[setup] %s\n' "$*" >&2; }

# System packages the tests and the demo use (git for Git sources and the
# syncer; openssh for ssh remotes). Only installed when missing. Debian's
# docker-registry package would start a service where an init system runs;
# the tests start their own registries, so that one is stopped if present.
need=()
command -v git >/dev/null || need+=(git)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v sshd >/dev/null || [[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v flock >/dev/null || need+=(util-linux)
# A real OCI registry for OCI chart sources and image automation tests, and
# htpasswd to give it basic auth.
[[ -x /usr/bin/docker-registry ]] || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
if ((${#need[@]})); then
  say "installing system packages: ${need[*]}"
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v go >/dev/null || { say "Go >= 1.26 is required to build the local cluster (go.dev/dl)"; exit 1; }
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { say "Python >= 3.11 is required"; exit 1; }

stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-12)
if [[ ! -f $stamp ]]; then
  say "creating .venv and installing helm-operator with its test extra"
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

say "building the local cluster binaries if missing (a cold build takes tens of minutes)"
bash tests/cluster/build.sh >/dev/null
