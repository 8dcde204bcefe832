"""Image-tag automation: registry scans, tag policy, values rewrites committed to Git.

Flow (COMPAT section 2 is the contract):

    registry scan ─▶ policy picks the newest allowed tag (pure)
                  ─▶ images (where each image lives in ``spec.values``, pure)
                  ─▶ yamledit (rewrite those scalars in the file, pure str -> str)
                  ─▶ commit + push ─▶ the syncer applies it, the operator upgrades
"""
