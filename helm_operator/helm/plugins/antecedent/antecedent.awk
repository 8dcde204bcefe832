# Post-renderer: add `helm.fluxcd.io/antecedent: <value>` to each document's
# metadata.annotations. Called as `awk -f antecedent.awk antecedent=<ns>:helmrelease/<name>`.
#
# Why awk and a line scan, not a YAML library: this runs once per helm
# install/upgrade, and a process that starts in a millisecond keeps the
# operator as cheap as helm itself. The scan is exact for what helm sends:
# helm 4 re-serialises every document (kyaml, two-space indentation) and
# puts its own `postrenderer.helm.sh/postrender-filename` annotation into
# each one's `metadata.annotations` before calling a post-renderer, so that
# line is always there, at four spaces, under `  annotations:` under
# `metadata:`. Our annotation goes right after it; an antecedent the chart
# wrote itself is replaced (a duplicate key would be invalid YAML). A
# document in flow style (`metadata: {...}`) is passed through unchanged:
# the operator patches the objects that lack the annotation afterwards, as
# it reads the stored manifest.

BEGIN { meta = 0; ann = 0 }

/^---/ { meta = 0; ann = 0; print; next }

# A top-level key: are we entering `metadata:`?
/^[^ #]/ { meta = ($0 ~ /^metadata:[ ]*$/); ann = 0; print; next }

# A key of metadata: are we entering `annotations:`?
meta && /^  [^ ]/ { ann = ($0 ~ /^  annotations:[ ]*$/); print; next }

# A key of metadata.annotations.
ann && /^    [^ ]/ {
    if ($0 ~ /^    ["']?helm\.fluxcd\.io\/antecedent["']?:/) next
    print
    if ($0 ~ /^    ["']?postrenderer\.helm\.sh\/postrender-filename["']?:/)
        print "    helm.fluxcd.io/antecedent: '" antecedent "'"
    next
}

{ print }
