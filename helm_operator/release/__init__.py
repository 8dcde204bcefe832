"""Reconciling one HelmRelease: observe, decide one action, act, record.

`state.py` (pure) names the situation and the action; `values.py` composes
values; `ownership.py` checks and stamps the antecedent annotation;
`record.py` turns outcomes into status, events and metrics; `reconciler.py`
ties them together for one queue key.
"""
