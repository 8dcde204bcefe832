#!/usr/bin/env bash
# Builds the local test cluster's binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok, helm) from the pinned
# Go modules in gomod/ through the Go module proxy.
#
# Output: $HELM_OPERATOR_CACHE/cluster/<key>/bin, where <key> hashes the pinned
# versions and wrapper modules, so a version bump builds into a new folder and
# an unchanged pin reuses the old one. Each binary is written under a temporary
# name and renamed when complete; a folder is only used once its `.complete`
# stamp exists, so an interrupted build is detected and redone (Go's own build
# cache keeps finished packages, so the redo is quick).
#
# Prints the bin folder on the last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${HELM_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/helm-operator}
key=$(cat "$here/versions.env" "$here"/gomod/*/go.mod "$here"/gomod/*/go.sum "$here/build.sh" | sha256sum | cut -c1-16)
out="$cache_root/cluster/$key"
bin="$out/bin"

log() { printf '[cluster-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -f "$out/.complete" ]]; then
  log "up to date: $bin"
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed: install Go >= 1.26 first"; exit 1; }
mkdir -p "$bin"
# Serialise concurrent builds (e.g. two test runs) on the same key.
exec 9>"$out/.lock"
flock 9
if [[ -f "$out/.complete" ]]; then echo "$bin"; exit 0; fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kmajor=$(echo "${KUBERNETES_VERSION#v}" | cut -d. -f1)
kminor=$(echo "${KUBERNETES_VERSION#v}" | cut -d. -f2)
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$kmajor -X $pkg.gitMinor=$kminor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=0000000000000000000000000000000000000000"
done

# build NAME MODULE_DIR PACKAGE LDFLAGS
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [[ -x "$bin/$name" ]]; then log "$name: already built"; return; fi
  local start=$SECONDS
  log "$name: building $pkg (cold builds take minutes; Go caches packages between runs)"
  (cd "$here/gomod/$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/.$name.tmp" "$pkg")
  mv "$bin/.$name.tmp" "$bin/$name"
  log "$name: done in $((SECONDS - start))s"
}

total=$SECONDS
build helm helm helm.sh/helm/v4/cmd/helm "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-s -w"
build kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
build kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"

# kwok's default stages ship inside its module; keep a copy beside the binaries
# so the launcher does not depend on the module cache at run time.
stages="$out/kwok-stages"
mkdir -p "$stages"
moddir=$(cd "$here/gomod/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  cp "$moddir/kustomize/stage/$f" "$stages/$(basename "$f")"
done
chmod u+w "$stages"/*

"$bin/helm" version --short >&2
"$bin/kube-apiserver" --version >&2
printf '%s\n' "$(date -u +%FT%TZ) built in $((SECONDS - total))s" > "$out/.complete"
log "all binaries built in $((SECONDS - total))s: $bin"
echo "$bin"
