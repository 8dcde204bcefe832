"""Parts of `benchmarks/release_engine.py`: what it observes from outside the
operator (`observe`), the world it runs in (`world`), its sections
(`converge`, `steady`) and the printed report (`report`).

Everything here depends only on the operator's outside interfaces: the
`helm-operator run` command line, HelmRelease objects and their status, the
helm binary it is told to run, its log lines on stderr, /proc, and the
kube-apiserver audit log. Nothing imports `helm_operator`.
"""
