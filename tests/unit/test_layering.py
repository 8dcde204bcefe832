"""The shape of the house, held by its imports (read with `ast`, nothing is imported).

Layers, lowest first; a module imports only from its own package and from
lower layers; packages that share a layer do not import each other:

    redaction, boundedyaml            leaves: import nothing of the package
    api | helm | gitrunner  the bottom: the model and the adapters
                                      that need no cluster
    kube                              the Kubernetes adapter
    runtime                           queueing, leader election, HTTP, metrics
    chartsource | gitsync | automation  one flow each
    release                           the release engine
    operator                          the release operator assembled
    cli                               the entry points

Why each rule exists:

- Nothing imports upward: data flows one way (watch -> queue -> reconcile ->
  helm), so a lower module that imported a higher one would let policy leak
  into an adapter, make import cycles possible, and make the lower layer
  impossible to test without the higher one. The leaves (`redaction`,
  `boundedyaml`) are the one credential redactor and the one YAML loader for
  user input; everything may use them only because they use nothing.
- Packages on one layer stay apart: `api` (the HelmRelease model) must not
  know how helm or Git are driven, nor `helm` what a HelmRelease is; the
  chart sources, the manifest syncer and image automation are separate
  flows that meet only in `release`/`operator`, so each can change (or be
  moved, as automation's CLI is) without touching the others.
- `cli` sits above `operator`: the command line assembles roles; a role never
  reaches back into argument parsing.
- Only `kube` imports `kubernetes`: one request function, one error tree and
  one discovery cache (`kube.rest`, `kube.errors`, `kube.discovery`); a
  second importer would bring back a second way to the API server, with its
  own errors and its own cost (the generated models).
- Only `helm` imports `pyhelm3`: one place translates helm's failures and
  holds the flags every call needs (impersonation, timeouts); the engine
  deals in `helm.HelmError` and release records.
- Only `gitrunner` imports `git` (GitPython): every Git call gets a timeout,
  credentials only through askpass/env (never argv, URL or log) and one
  error tree; a direct import would bypass all three.

A new top-level module or package fails `test_every_module_has_a_layer` until
it is given a place here: the contract covers the whole package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "helm_operator"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

LAYERS: list[set[str]] = [
    {"redaction", "boundedyaml"},
    {"api", "helm", "gitrunner"},
    {"kube"},
    {"runtime"},
    {"chartsource", "gitsync", "automation"},
    {"release"},
    {"operator"},
    {"cli"},
]
ROOT_UNIT = "__init__"  # the package's own __init__: the version, imports nothing of ours

# third-party import name -> the one unit allowed to import it
SOLE_IMPORTERS = {"kubernetes": "kube", "pyhelm3": "helm", "git": "gitrunner"}


def _layer_of() -> dict[str, int]:
    out = {ROOT_UNIT: -1}
    for i, units in enumerate(LAYERS):
        out.update(dict.fromkeys(units, i))
    return out


def _unit(module: str) -> str:
    """`helm_operator.kube.client` -> `kube`; the package itself -> ROOT_UNIT."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT_UNIT


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, also inside functions
    and `if TYPE_CHECKING:` blocks (a dependency is a dependency)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target == PACKAGE:  # from . import x; from helm_operator import x
                for alias in node.names:
                    yield node.lineno, PACKAGE if alias.name == "__version__" else f"{target}.{alias.name}"
            else:
                yield node.lineno, target


def _sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _units_present() -> set[str]:
    return {_unit(_module_name(p)) for p in _sources()}


def test_every_module_has_a_layer() -> None:
    layer = _layer_of()
    unplaced = sorted(_units_present() - set(layer))
    assert not unplaced, (f"{', '.join(unplaced)}: not in the layering contract; add each to LAYERS in "
                          f"{Path(__file__).name} (and say why there)")
    stale = sorted(set(layer) - _units_present())
    assert not stale, f"LAYERS names {', '.join(stale)}, which no longer exist; remove them"


def test_nothing_imports_upward_or_sideways() -> None:
    layer = _layer_of()
    wrong = []
    for path in _sources():
        unit = _unit(_module_name(path))
        for line, target in _imports(path):
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            other = _unit(target)
            if other == unit or other not in layer or unit not in layer:
                continue  # an unplaced unit fails test_every_module_has_a_layer
            if layer[other] > layer[unit]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {unit} imports {target}, "
                             f"which is in a higher layer ({other})")
            elif layer[other] == layer[unit]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {unit} imports {target}; "
                             f"{unit} and {other} share a layer and stay independent")
    assert not wrong, "layering broken:\n" + "\n".join(wrong)


def test_each_foreign_system_has_one_importer() -> None:
    wrong = []
    for path in _sources():
        unit = _unit(_module_name(path))
        for line, target in _imports(path):
            top = target.split(".")[0]
            owner = SOLE_IMPORTERS.get(top)
            if owner is not None and unit != owner:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: imports {target}; only "
                             f"{PACKAGE}.{owner} may import {top}: go through it")
    assert not wrong, "\n".join(wrong)


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checks above are only as good as `_imports`: relative, lazy and package-level
    imports must all come out as absolute module names."""
    root = tmp_path / PACKAGE
    (root / "kube").mkdir(parents=True)
    source = root / "kube" / "client.py"
    source.write_text(
        "from . import errors\n"
        "from ..release import state\n"
        "from helm_operator import __version__, redaction\n"
        "import kubernetes.client\n"
        "def f():\n"
        "    from helm_operator.cli import run\n")
    found = [target for _, target in _imports(source, root)]
    assert found == ["helm_operator.kube.errors", "helm_operator.release", PACKAGE,
                     "helm_operator.redaction", "kubernetes.client", "helm_operator.cli"]
