"""The HelmRelease v1 API, pure: model, defaults, validation, status helpers.

Place in the flow: everything that reads a HelmRelease (the release operator,
the CLI, image automation) turns the dict the Kubernetes API returns into the
frozen model of `helmrelease.parse` first, and builds status with the helpers
of `conditions`. Nothing here does I/O or imports `kubernetes`; the only
impure helper is `conditions.now_rfc3339`.

Modules:
    constants    names of the resource, phases, condition types, reasons
    automation   COMPAT section 2: automation annotation keys, the policy they
                 express and the changes that set them; the ImageAutomation
                 condition and event reasons
    helmrelease  `parse(obj) -> HelmRelease` with every default of COMPAT §1
    sources      chart source and valuesFrom entries (re-exported by helmrelease)
    _fields      typed field readers and `InvalidSpec` (internal)
    conditions   set/get/remove status conditions, metric values
    values       deep merge of values, digest of values for change detection
"""
