"""Image-tag automation: registry scans, tag policy, values rewrites committed to Git.

Flow (COMPAT section 2 is the contract; its annotation keys and the policy
they express live in `api.automation`):

    registry scan ─▶ policy picks the newest allowed tag (pure)
                  ─▶ detect (where each image lives in ``spec.values``, pure)
                  ─▶ yamledit (rewrite those scalars in the file, pure str -> str)
                  ─▶ commit + push ─▶ the syncer applies it, the operator upgrades

One module per concept:

    registry/     the Registry API client: credentials, errors, transport, client
    imageref      the one parser of image references
    paths         the dotted-path grammar of the path annotations
    detect        images in a HelmRelease's values, and the writes for a new tag
    semver        semver constraints; policy: every filter, and the tag choice
    plan          a pass's decisions for one HelmRelease document (pure)
    releasefiles  the index of HelmRelease documents in a checkout
    yamledit      in-place scalar edits; annotations: in-place annotation edits
    gitwrite      commit and push, re-applied after a lost race
    reporting     what users are told per HelmRelease: events, the condition
    automator     the operator's loop: scan, pass, report

The commands a person runs (`list-images`, `release`, `lock`, ...) live in
`helm_operator.cli`; they use these modules, never the other way round.
"""
