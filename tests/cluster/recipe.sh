# What the local test cluster's binaries are built from and how: sourced by
# build.sh, never run alone. The build folder's key hashes this file with
# versions.env and the gomod/ modules, so a change here (a flag, a target)
# builds into a new folder, while build.sh's locking and progress reporting
# can change without a rebuild.
#
# Needs: $here (this folder), $bin (the output folder), the versions from
# versions.env. Defines `build_one NAME DIR PKG LDFLAGS` (one go build into
# $bin/.NAME.tmp), `recipe_targets` (one line per binary: NAME DIR PKG
# LDFLAGS-variable) and `copy_kwok_stages OUT`.

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kmajor=$(echo "${KUBERNETES_VERSION#v}" | cut -d. -f1)
kminor=$(echo "${KUBERNETES_VERSION#v}" | cut -d. -f2)
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$kmajor -X $pkg.gitMinor=$kminor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=0000000000000000000000000000000000000000"
done
helm_ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
plain_ldflags="-s -w"

# build_one NAME MODULE_DIR PACKAGE LDFLAGS: write $bin/.NAME.tmp
build_one() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  (cd "$here/gomod/$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/.$name.tmp" "$pkg")
}

# NAME MODULE_DIR PACKAGE LDFLAGS_VARIABLE, in build order.
recipe_targets() {
  cat <<'TARGETS'
helm helm helm.sh/helm/v4/cmd/helm helm_ldflags
etcd etcd go.etcd.io/etcd/server/v3 plain_ldflags
kwok kwok sigs.k8s.io/kwok/cmd/kwok plain_ldflags
kubectl kubernetes k8s.io/kubernetes/cmd/kubectl kube_ldflags
kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler kube_ldflags
kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager kube_ldflags
kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver kube_ldflags
TARGETS
}

# kwok's default stages ship inside its module; keep a copy beside the binaries
# so the launcher does not depend on the module cache at run time.
copy_kwok_stages() {
  local stages=$1 moddir f
  mkdir -p "$stages"
  moddir=$(cd "$here/gomod/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cp "$moddir/kustomize/stage/$f" "$stages/$(basename "$f")"
  done
  chmod u+w "$stages"/*
}
