#!/usr/bin/env bash
# Builds the local test cluster's binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok, helm) from the pinned
# Go modules in gomod/ through the Go module proxy, as recipe.sh says.
#
# Output: $HELM_OPERATOR_CACHE/cluster/<key>/bin, where <key> hashes the pinned
# versions, the wrapper modules and recipe.sh, so a version bump builds into a
# new folder and an unchanged pin reuses the old one. Each binary is written
# under a temporary name and renamed when complete; a folder is only used once
# its `.complete` stamp exists, so an interrupted build is detected and redone
# (Go's own build cache keeps finished packages, so the redo is quick).
#
# Concurrent builds of one key take turns on a lock. The one waiting says who
# holds it (pid, command, since when), how long it has waited, and the
# holder's last progress line, every $HELM_OPERATOR_BUILD_REPORT seconds
# (default 30); a long `go build` says it is still running as often.
#
# Prints the bin folder on the last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${HELM_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/helm-operator}
key=$(cat "$here/versions.env" "$here"/gomod/*/go.mod "$here"/gomod/*/go.sum "$here/recipe.sh" | sha256sum | cut -c1-16)
out="$cache_root/cluster/$key"
bin="$out/bin"
report_every=${HELM_OPERATOR_BUILD_REPORT:-30}
progress=""  # the holder's progress file, once this process holds the lock

log() {
  local line
  line=$(printf '[cluster-build %s] %s' "$(date +%H:%M:%S)" "$*")
  printf '%s\n' "$line" >&2
  if [[ -n $progress ]]; then printf '%s\n' "$line" >>"$progress"; fi
}

if [[ -f "$out/.complete" ]]; then
  log "up to date: $bin"
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed: install Go >= 1.26 first"; exit 1; }
mkdir -p "$bin"

# holder: who holds the lock, from the file the holder writes once it has it.
holder() {
  local info pid
  info=$(cat "$out/.lock.holder" 2>/dev/null || true)
  pid=${info%% *}
  if [[ -z $info ]]; then echo "another build (it has not said who yet)"
  elif [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then echo "pid $pid, which has just ended"
  else echo "pid $info"
  fi
}

# Serialise concurrent builds (e.g. two test runs) on the same key, saying so.
exec 9>>"$out/.lock"
if ! flock -n 9; then
  wait_start=$SECONDS
  log "waiting for the build lock $out/.lock, held by $(holder)"
  while ! flock -w "$report_every" 9; do
    last=$(tail -n 1 "$out/.progress" 2>/dev/null || true)
    log "still waiting for the build lock after $((SECONDS - wait_start))s; held by $(holder)${last:+; its last step: ${last#*] }}"
  done
  log "got the build lock after $((SECONDS - wait_start))s"
fi
if [[ -f "$out/.complete" ]]; then log "built meanwhile by the other build: $bin"; echo "$bin"; exit 0; fi
printf '%s (%s) since %s\n' "$$" "$(tr '\0' ' ' </proc/$PPID/cmdline 2>/dev/null | cut -c1-100 || echo '?')" \
  "$(date +%H:%M:%S)" >"$out/.lock.holder"
progress="$out/.progress"
: >"$progress"

# shellcheck source=recipe.sh
source "$here/recipe.sh"

# build NAME DIR PKG LDFLAGS: build_one in the background, saying every
# $report_every seconds that it still runs (a cold kube-apiserver takes minutes).
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [[ -x "$bin/$name" ]]; then log "$name: already built"; return; fi
  local start=$SECONDS next=$((SECONDS + report_every)) pid
  log "$name: building $pkg (cold builds take minutes; Go caches packages between runs)"
  build_one "$name" "$dir" "$pkg" "$ldflags" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)); then log "$name: still building after $((SECONDS - start))s"; next=$((SECONDS + report_every)); fi
  done
  wait "$pid"
  mv "$bin/.$name.tmp" "$bin/$name"
  log "$name: done in $((SECONDS - start))s"
}

total=$SECONDS
mapfile -t targets < <(recipe_targets)
for target in "${targets[@]}"; do
  read -r name dir pkg flags <<<"$target"
  build "$name" "$dir" "$pkg" "${!flags}"
done
copy_kwok_stages "$out/kwok-stages"

"$bin/helm" version --short >&2
"$bin/kube-apiserver" --version >&2
printf '%s\n' "$(date -u +%FT%TZ) built in $((SECONDS - total))s" > "$out/.complete"
log "all binaries built in $((SECONDS - total))s: $bin"
echo "$bin"
