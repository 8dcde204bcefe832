"""kwok Stage documents for the local cluster: how fake pods and nodes behave.

kwok's default "fast" stages make a node Ready and every pod Running and Ready
at once, and complete Job pods. The tests also need pods that misbehave, so
two labels are defined here (documented in the README):

- `POD_STATE_LABEL: unready`: the pod runs but never becomes Ready, so a
  Deployment stays unavailable and `helm --wait` times out;
- `POD_STATE_LABEL: fail`: the pod fails (phase Failed, exit code 1), so a Job
  or a `helm test` pod fails.

Bare pods with `restartPolicy: Never` or `OnFailure` (helm test hooks) also
complete, as a real container that exits 0 would. Pure data: nothing here
talks to a cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

POD_STATE_LABEL = "test.helm-operator.dev/pod-state"
UNREADY = "unready"
FAIL = "fail"

_NOT_LABELLED = {"key": f'.metadata.labels["{POD_STATE_LABEL}"]', "operator": "DoesNotExist"}


def _labelled(value: str) -> dict[str, Any]:
    return {"key": f'.metadata.labels["{POD_STATE_LABEL}"]', "operator": "In", "values": [value]}


_NOT_DELETED = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}


def _phase(*phases: str) -> dict[str, Any]:
    return {"key": ".status.phase", "operator": "In", "values": list(phases)}


def _stage(name: str, expressions: list[dict[str, Any]], status_template: str) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": expressions},
            "next": {"statusTemplate": status_template},
        },
    }


_UNREADY_STATUS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""

_FAILED_STATUS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: PodFailed
  type: Ready
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    terminated:
      exitCode: 1
      reason: Error
      message: failed by the kwok stage for the fail label
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
phase: Failed
startTime: {{ $now | Quote }}
"""


def _with_expression(doc: dict[str, Any], expression: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["spec"]["selector"].setdefault("matchExpressions", []).append(expression)
    return doc


def stage_documents(default_stage_dir: Path) -> list[dict[str, Any]]:
    """Return every Stage the local kwok runs, from kwok's shipped defaults."""

    def load(name: str) -> dict[str, Any]:
        return yaml.safe_load((default_stage_dir / name).read_text())

    pod_ready = _with_expression(load("pod-ready.yaml"), _NOT_LABELLED)
    pod_complete = _with_expression(load("pod-complete.yaml"), _NOT_LABELLED)
    # Bare pods that are meant to exit (helm test hooks): complete them too.
    bare_complete = copy.deepcopy(pod_complete)
    bare_complete["metadata"]["name"] = "pod-complete-run-once"
    bare_complete["spec"]["selector"]["matchExpressions"] = [
        _NOT_DELETED,
        _phase("Running"),
        {"key": ".spec.restartPolicy", "operator": "In", "values": ["Never", "OnFailure"]},
        _NOT_LABELLED,
    ]
    return [
        load("node-initialize.yaml"),
        load("node-heartbeat-with-lease.yaml"),
        pod_ready,
        pod_complete,
        bare_complete,
        load("pod-delete.yaml"),
        _stage("pod-stay-unready", [_NOT_DELETED, _phase("Pending"), _labelled(UNREADY)], _UNREADY_STATUS),
        _stage("pod-fail", [_NOT_DELETED, _phase("Pending", "Running"), _labelled(FAIL)], _FAILED_STATUS),
    ]


def write_config(default_stage_dir: Path, target: Path) -> Path:
    """Write the stages as one multi-document kwok config file."""
    target.write_text(yaml.safe_dump_all(stage_documents(default_stage_dir), sort_keys=False))
    return target
