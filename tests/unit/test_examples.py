"""The example GitOps repository in `examples/` stays valid.

Every YAML file parses the way the syncer parses it; every HelmRelease
validates against the openAPIV3Schema of `crds/helmrelease.yaml` (structure,
types, enums, required fields, no unknown fields outside `spec.values`, and
the CRD's one CEL rule: exactly one source per valuesFrom entry) and against
`helm_operator.api.helmrelease.parse` for the semantics (a complete chart
source, a valid release name). The automated example's annotations must
name a valid tag filter and paths that exist in its values. Every file is
commented for a newcomer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_operator.api.helmrelease import parse
from helm_operator.automation.policy import FilterType, parse_filter
from helm_operator.gitsync.manifests import parse_files

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CRD = REPO / "crds" / "helmrelease.yaml"
YAML_FILES = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml"))

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Errors of `value` against a structural OpenAPI v3 schema, as the API
    server with strict field validation would report them (CEL excepted)."""
    where = path or "<root>"
    expected = schema.get("type")
    if expected:
        ok = isinstance(value, _TYPES[expected]) and not (expected in ("integer", "number")
                                                           and isinstance(value, bool))
        if not ok:
            return [f"{where}: expected {expected}, got {type(value).__name__}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: required field {key!r} missing")
        props = schema.get("properties", {})
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], f"{path}.{key}")
            elif "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
                errors += schema_errors(item, schema["additionalProperties"], f"{path}.{key}")
            elif props and not preserve:
                errors.append(f"{where}: unknown field {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in YAML_FILES for d in yaml.safe_load_all(p.read_text()) if d]


def helmreleases() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p, d in documents() if d.get("kind") == "HelmRelease"]


def test_the_layout_is_complete() -> None:
    assert (EXAMPLES / "README.md").is_file()
    assert {p.parent.name for p in YAML_FILES} == {"namespaces", "releases"}
    releases = [d for _, d in helmreleases()]
    chart_keys = [set(d["spec"]["chart"]) for d in releases]
    assert any("git" in keys for keys in chart_keys), "a chart from Git"
    assert any(d["spec"]["chart"].get("repository", "").startswith("https://") for d in releases)
    assert any(d["spec"]["chart"].get("repository", "").startswith("oci://") for d in releases)
    value_sources = {key for d in releases for entry in d["spec"].get("valuesFrom", []) for key in entry}
    assert {"configMapKeyRef", "secretKeyRef"} <= value_sources
    assert any((d["metadata"].get("annotations") or {}).get("fluxcd.io/automated") == "true" for d in releases)
    readme = (EXAMPLES / "README.md").read_text()
    for path in YAML_FILES:
        assert path.name in readme, f"README.md does not mention {path.name}"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_file_parses_as_the_syncer_reads_it_and_is_commented(path: Path) -> None:
    text = path.read_text()
    parsed = parse_files({str(path.relative_to(EXAMPLES)): text.encode()})
    assert not parsed.errors, parsed.errors
    assert parsed.documents, "no objects"
    assert text.lstrip().startswith("#"), "each file starts with a comment saying what it is"
    for doc in yaml.safe_load_all(text):
        assert doc is None or {"apiVersion", "kind", "metadata"} <= set(doc)


@pytest.mark.parametrize(("path", "release"), helmreleases(),
                         ids=lambda x: x.name if isinstance(x, Path) else x["metadata"]["name"])
def test_every_helmrelease_validates_against_the_crd_and_parses(path: Path, release: dict[str, Any]) -> None:
    assert schema_errors(release, crd_schema()) == []
    for entry in release["spec"].get("valuesFrom", []):  # the CRD's CEL rule
        assert len(entry) == 1, f"valuesFrom entries need exactly one source: {entry}"
    hr = parse(release)
    assert hr.chart is not None and hr.release_name


def test_the_schema_check_catches_mistakes() -> None:
    """The validator above is strict enough to be worth trusting."""
    bad = {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease", "metadata": {"name": "x"},
           "spec": {"chart": {"repository": "https://x", "name": "x", "verison": "1"},
                    "timeout": "300", "helmVersion": "v4", "values": {"anything": {"goes": 1}}}}
    errors = schema_errors(bad, crd_schema())
    assert any("unknown field 'verison'" in e for e in errors)
    assert any(".spec.timeout: expected integer" in e for e in errors)
    assert any("'v4' not one of" in e for e in errors)
    assert not any("anything" in e for e in errors)
    del bad["spec"]["chart"]
    assert any("required field 'chart'" in e for e in schema_errors(bad, crd_schema()))


def test_automated_release_names_a_valid_filter_and_existing_paths() -> None:
    [(_, release)] = [(p, d) for p, d in helmreleases()
                      if (d["metadata"].get("annotations") or {}).get("fluxcd.io/automated") == "true"]
    annotations = release["metadata"]["annotations"]
    containers = {k.split("/", 1)[1] for k in annotations if k.startswith("filter.fluxcd.io/")}
    assert containers, "a tag filter per container"
    for name in containers:
        tag_filter = parse_filter(annotations[f"filter.fluxcd.io/{name}"])
        assert (tag_filter.type, tag_filter.expression) == (FilterType.SEMVER, "~1.0")
        assert tag_filter.matches("1.0.7") and not tag_filter.matches("1.1.0")
        for prefix in ("repository.fluxcd.io/", "tag.fluxcd.io/"):
            for dot_path in annotations[f"{prefix}{name}"].split(","):
                node: Any = release["spec"]["values"]
                for key in dot_path.strip().split("."):
                    assert isinstance(node, dict) and key in node, f"{prefix}{name}: {dot_path} not in values"
                    node = node[key]
                assert isinstance(node, str) and node
    images = pytest.importorskip("helm_operator.automation.detect")
    found = images.find_images(release)
    assert not found.errors, found.errors
    [web] = [c for c in found.containers if c.name in containers]
    assert web.mapped and web.tag == "1.0.0"


def test_the_release_controls_are_shown_with_comments() -> None:
    """suspend, dependsOn (on another example release) and drift settings with an ignore rule."""
    releases = {d["metadata"]["name"]: (p, d) for p, d in helmreleases()}
    specs = [d["spec"] for _, d in releases.values()]
    assert any("suspend" in s for s in specs)
    dependencies = [dep for s in specs for dep in s.get("dependsOn", [])]
    assert dependencies and all(dep["name"] in releases for dep in dependencies)
    drift = [s["driftDetection"] for s in specs if "driftDetection" in s]
    assert drift and drift[0]["mode"] in ("warn", "enabled") and drift[0]["ignore"][0]["paths"]
    for key in ("suspend:", "dependsOn:", "driftDetection:"):
        [path] = [p for p, d in releases.values() if key.rstrip(":") in d["spec"]]
        lines = path.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(key))
        assert lines[at - 1].strip().startswith("#"), f"{path.name}: {key} has no comment above it"
