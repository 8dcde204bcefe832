"""Manifests in a Git tree: which files count, their objects, their IDs (pure).

Place in the flow: `mirror` hands over the files of a commit as
``{path: bytes}``; this module selects the manifest files (COMPAT 3: only
``.yaml``/``.yml``, chart directories skipped), parses each file on its own
within the YAML limits (`boundedyaml`: size, nesting, alias expansion; a
broken or hostile file becomes a `FileError`, never an exception, and the
other files still count), expands ``*List``
kinds, computes each object's checksum (sha1 of its bytes in Git), and, given
a scope lookup, gives every object its resource ID
``<namespace>:<kind>/<name>`` (``<cluster>`` for cluster-scoped kinds) and
reports duplicates. `plan` takes it from there.

What this module does NOT do: no I/O (the caller reads Git and asks the
cluster which kinds are namespaced), no ordering, no labels, no decisions
about garbage collection.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import yaml

from helm_operator import boundedyaml
from helm_operator.api.automation import IGNORE_ANNOTATIONS
from helm_operator.boundedyaml import Limits

log = logging.getLogger(__name__)

CLUSTER_SCOPE = "<cluster>"
MANIFEST_SUFFIXES = (".yaml", ".yml")

# A line holding only a document separator (optionally followed by a comment
# or content, which YAML allows after `---`).
_DOC_SEPARATOR = re.compile(rb"^---(?=[ \t\r]|$)", re.MULTILINE)


class Policy(Enum):
    """What `fluxcd.io/ignore` says about an object (Git or live)."""

    NONE = "none"
    IGNORE = "ignore"  # "true": neither applied nor deleted
    SYNC_ONLY = "sync_only"  # applied, never garbage-collected


def policy_of(annotations: Mapping[str, Any] | None) -> Policy:
    """The ignore policy of an object from its annotations (legacy prefix too)."""
    for key in IGNORE_ANNOTATIONS:
        value = str((annotations or {}).get(key, "")).strip()
        if value == "true":
            return Policy.IGNORE
        if value == "sync_only":
            return Policy.SYNC_ONLY
    return Policy.NONE


def resource_id(namespace: str | None, kind: str, name: str) -> str:
    """Flux v1's resource ID: ``<namespace>:<kind>/<name>``, kind lower-case."""
    return f"{namespace or CLUSTER_SCOPE}:{kind.lower()}/{name}"


@dataclass(frozen=True)
class FileError:
    """Something in Git that could not be used; `obj` names the object or document."""

    file: str
    reason: str
    obj: str = ""

    def __str__(self) -> str:
        where = f"{self.file} ({self.obj})" if self.obj else self.file
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Document:
    """One object as written in Git."""

    source: str  # file path inside the repository
    api_version: str
    kind: str
    name: str
    namespace: str | None  # as written; None when absent
    body: dict[str, Any] = field(hash=False, compare=False)
    checksum: str  # sha1 hex of the object's bytes in Git
    policy: Policy = Policy.NONE

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    def describe(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


@dataclass(frozen=True)
class Manifest:
    """A document with its effective namespace and resource ID."""

    doc: Document
    namespace: str | None  # None for cluster-scoped kinds
    resource_id: str

    @property
    def kind(self) -> str:
        return self.doc.kind

    @property
    def name(self) -> str:
        return self.doc.name


@dataclass
class Parsed:
    """All documents of a tree, and what went wrong file by file."""

    documents: list[Document] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)

    @property
    def failed_files(self) -> list[str]:
        """Files with at least one unusable document (they might define anything)."""
        return sorted({e.file for e in self.errors})


# ---- file selection ---------------------------------------------------------

def normalise_root(root: str) -> str:
    """A configured --git-path as a repository-relative POSIX path ('' = whole tree)."""
    cleaned = posixpath.normpath(root.strip().strip("/")) if root.strip().strip("/") else ""
    return "" if cleaned in ("", ".") else cleaned


def chart_dirs(paths: Iterable[str]) -> set[str]:
    """Directories holding both Chart.yaml and values.yaml: charts, not manifests."""
    by_dir: dict[str, set[str]] = {}
    for path in paths:
        directory, base = posixpath.split(path)
        by_dir.setdefault(directory, set()).add(base)
    return {d for d, names in by_dir.items() if {"Chart.yaml", "values.yaml"} <= names}


def _under(path: str, directory: str) -> bool:
    return directory == "" or path == directory or path.startswith(directory + "/")


def select_manifest_files(
    paths: Iterable[str], roots: Sequence[str]
) -> tuple[list[str], list[FileError]]:
    """The manifest files of a tree below `roots`, and an error per missing root."""
    all_paths = sorted(set(paths))
    charts = chart_dirs(all_paths)
    selected: set[str] = set()
    errors: list[FileError] = []
    for root in [normalise_root(r) for r in (roots or [""])]:
        below = [p for p in all_paths if _under(p, root)]
        if not below:
            errors.append(FileError(root or ".", "path not found in the repository at this "
                                    "commit; fix --git-path or add it to the repository"))
            continue
        for p in below:
            if not p.endswith(MANIFEST_SUFFIXES):
                continue
            if any(_under(p, c) for c in charts):
                continue
            selected.add(p)
    return sorted(selected), errors


# ---- parsing ----------------------------------------------------------------

def split_documents(data: bytes) -> list[bytes]:
    """The raw bytes of each YAML document of a multi-document file."""
    parts = _DOC_SEPARATOR.split(data)
    out: list[bytes] = []
    for i, part in enumerate(parts):
        if i > 0:
            part = part.split(b"\n", 1)[1] if b"\n" in part else b""  # rest of the --- line
        part = re.split(rb"^\.\.\.[ \t]*$", part, maxsplit=1, flags=re.MULTILINE)[0]
        out.append(part)
    return out


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _document(source: str, label: str, obj: Any, raw: bytes) -> Document | FileError:
    if not isinstance(obj, dict):
        return FileError(source, f"expected a mapping (a Kubernetes object), got {type(obj).__name__}", label)
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    missing = [k for k, v in (("apiVersion", api_version), ("kind", kind), ("metadata.name", name)) if not v]
    if missing:
        return FileError(source, f"missing {', '.join(missing)}; every object needs apiVersion, "
                         "kind and metadata.name", label)
    if not all(isinstance(v, str) for v in (api_version, kind, name)):
        return FileError(source, "apiVersion, kind and metadata.name must be strings", label)
    assert isinstance(meta, dict)
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        return FileError(source, "metadata.namespace must be a string", label)
    return Document(
        source=source, api_version=str(api_version), kind=str(kind), name=str(name),
        namespace=namespace or None, body=obj, checksum=_sha1(raw),
        policy=policy_of(meta.get("annotations") if isinstance(meta.get("annotations"), dict) else None),
    )


def parse_file(source: str, data: bytes, limits: Limits = Limits()
               ) -> tuple[list[Document], list[FileError]]:
    """Every object in one file; documents that fail are errors, the rest still count.

    The limits hold for the file as a whole: its size, and one node budget
    shared by its documents. A file over a limit yields only that error.
    """
    docs: list[Document] = []
    errors: list[FileError] = []
    try:
        boundedyaml.check_size(data, source, limits)
    except boundedyaml.LimitExceeded as e:
        return [], [FileError(source, f"{e.reason}; none of its objects is applied")]
    budget = boundedyaml.Budget()
    for index, raw in enumerate(split_documents(data), start=1):
        label = f"document {index}"
        try:
            obj = boundedyaml.load(raw, source, limits, budget=budget)
        except boundedyaml.LimitExceeded as e:
            return [], [FileError(source, f"{e.reason}; none of its objects is applied", label)]
        except boundedyaml.YamlError as e:
            errors.append(FileError(source, e.reason.replace("not valid YAML", "invalid YAML", 1), label))
            continue
        if obj is None:
            continue  # empty document or comments only
        if isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List") and "items" in obj:
            items = obj.get("items")
            if not isinstance(items, list):
                errors.append(FileError(source, f"{obj.get('kind')}.items must be a list", label))
                continue
            for i, item in enumerate(items):
                item_raw = yaml.safe_dump(item, sort_keys=True).encode()
                result = _document(source, f"{label} item {i}", item, item_raw)
                (errors if isinstance(result, FileError) else docs).append(result)  # type: ignore[arg-type]
            continue
        result = _document(source, label, obj, raw)
        (errors if isinstance(result, FileError) else docs).append(result)  # type: ignore[arg-type]
    return docs, errors


def parse_files(files: Mapping[str, bytes], limits: Limits = Limits()) -> Parsed:
    """Parse every file on its own, in path order; one file can never stop the others.

    CPU-bound (seconds for files at the limits): the syncer runs it in a thread.
    """
    parsed = Parsed()
    for path in sorted(files):
        try:
            docs, errors = parse_file(path, files[path], limits)
        except Exception as e:  # noqa: BLE001 - a file the limits did not foresee: report it, go on
            log.error("%s: could not be read (%s); the other files are synced", path, type(e).__name__)
            docs, errors = [], [FileError(path, f"could not be read ({type(e).__name__}); "
                                          "none of its objects is applied")]
        parsed.documents.extend(docs)
        parsed.errors.extend(errors)
    return parsed


# ---- resource IDs -----------------------------------------------------------

ScopeLookup = Callable[[str, str], "bool | None"]
"""(apiVersion, kind) -> True namespaced, False cluster-scoped, None unknown."""


@dataclass
class Resolved:
    manifests: list[Manifest] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    # IDs Git might define but that cannot be applied (unknown kind,
    # duplicates): never garbage-collected.
    protected_ids: set[str] = field(default_factory=set)


def resolve(documents: Sequence[Document], namespaced: ScopeLookup, default_namespace: str) -> Resolved:
    """Give each document its effective namespace and ID; report unknown kinds and duplicates.

    Namespace defaulting follows kubectl: a namespaced object without one gets
    `default_namespace`; a cluster-scoped object's namespace is dropped.
    """
    out = Resolved()
    by_id: dict[str, list[Manifest]] = {}
    for doc in documents:
        scope = namespaced(doc.api_version, doc.kind)
        if scope is None:
            guess = resource_id(doc.namespace or default_namespace, doc.kind, doc.name)
            out.protected_ids.update({guess, resource_id(None, doc.kind, doc.name)})
            out.errors.append(FileError(
                doc.source,
                f"unknown kind {doc.kind} in apiVersion {doc.api_version}: the cluster does not "
                "serve it and no CustomResourceDefinition in Git defines it; install the CRD or "
                "fix apiVersion/kind",
                guess,
            ))
            continue
        ns = (doc.namespace or default_namespace) if scope else None
        manifest = Manifest(doc, ns, resource_id(ns, doc.kind, doc.name))
        by_id.setdefault(manifest.resource_id, []).append(manifest)
    for rid, group in by_id.items():
        if len(group) == 1:
            out.manifests.append(group[0])
            continue
        out.protected_ids.add(rid)
        sources = ", ".join(sorted(m.doc.source for m in group))
        for m in group:
            out.errors.append(FileError(
                m.doc.source,
                f"duplicate definition (in {sources}); none of them is applied until only one remains",
                rid,
            ))
    return out
