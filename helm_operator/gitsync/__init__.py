"""The manifest syncer (`helm-operator sync`): Git to cluster, one way.

Flow, one module per step:

    config ─▶ mirror (fetch Git) ─▶ manifests (parse per file, pure)
           ─▶ plan (order, gc marks, stale set, pure)
           ─▶ apply (server-side) ─▶ gc (delete stale)
           ─▶ marker (flux-sync tag or in-cluster) + status (ConfigMap)

`syncer` runs that flow per source on a timer or trigger; `command` wires it
to the CLI (`helm-operator sync`, `helm-operator sync-status`). Only
`helm_operator.kube` talks to the API server. COMPAT section 3 is the contract.
"""
