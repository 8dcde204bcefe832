# syntax=docker/dockerfile:1
#
# The helm-operator image: one image for both containers of the chart's pod
# (`helm-operator sync` and `helm-operator run`), with the helm, git and ssh
# binaries they drive.
#
#   docker build -t helm-operator:dev .
#   docker run --rm helm-operator:dev --help
#
# Stages: `helm` builds helm from source at the pinned version, `wheels` builds
# the package and its dependencies as wheels, the final stage installs both
# into python:3.11-slim without any compiler, Go toolchain or pip left behind.

ARG PYTHON_VERSION=3.11
ARG GO_VERSION=1.26

# ---------------------------------------------------------------- helm ----
FROM golang:${GO_VERSION}-bookworm AS helm
# Must match tests/cluster/versions.env (HELM_VERSION) and the pinned module in
# tests/cluster/gomod/helm/go.mod, whose go.sum makes the source verifiable.
ARG HELM_VERSION=v4.3.1
WORKDIR /src
COPY tests/cluster/gomod/helm/ ./
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local
RUN pinned="$(go list -m -f '{{.Version}}' helm.sh/helm/v4)" \
 && [ "$pinned" = "$HELM_VERSION" ] \
      || { echo "go.mod pins helm $pinned, HELM_VERSION is $HELM_VERSION" >&2; exit 1; } \
 && go build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
      -o /out/helm helm.sh/helm/v4/cmd/helm \
 && /out/helm version --short | grep -qx "${HELM_VERSION}.*"

# -------------------------------------------------------------- wheels ----
FROM python:${PYTHON_VERSION}-slim AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY helm_operator/ helm_operator/
# The package and every dependency as wheels, so the final stage installs
# offline and needs no build tools.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --------------------------------------------------------------- final ----
FROM python:${PYTHON_VERSION}-slim
# git: Git sources of the syncer and Git charts of the operator;
# openssh-client: ssh:// and git@ remotes; tini: PID 1 that forwards
# SIGTERM to helm-operator and reaps the git/ssh/helm children; mawk: the
# antecedent post-renderer helm runs as a plugin (helm_operator/helm/postrender.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates tini mawk \
 && rm -rf /var/lib/apt/lists/*
COPY --from=helm /out/helm /usr/local/bin/helm
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels helm-operator \
 && pip uninstall -y pip setuptools wheel
# A fixed numeric user, so Kubernetes' runAsNonRoot can check it (the chart
# runs as 10001:10001 with a read-only root filesystem and HOME=/tmp).
RUN groupadd --gid 10001 helm-operator \
 && useradd --uid 10001 --gid 10001 --home-dir /home/helm-operator --create-home \
      --shell /usr/sbin/nologin helm-operator
USER 10001:10001
ENV HOME=/home/helm-operator \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# 3030: operator (/metrics, /healthz, POST /api/v1/sync-git);
# 3031: syncer (/metrics, /healthz, POST /api/v1/sync).
EXPOSE 3030 3031
ENTRYPOINT ["/usr/bin/tini", "--", "helm-operator"]
CMD ["run"]
