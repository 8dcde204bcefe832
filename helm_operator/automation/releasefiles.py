"""The HelmRelease documents of a Git checkout, by namespace and name: one index.

Place in the flow: a fresh checkout (`gitwrite.GitWriter`) ─▶ **releasefiles**
─▶ the edit of the one file that holds a HelmRelease (`yamledit` for image
values, `annotations` for policy annotations) ─▶ commit. Image automation
(`automator`) and the commands that change a workload (`cli/gitchange.py`)
both find files through `ReleaseIndex.scan`, which reads every YAML file
under the configured paths once.

Files are read within the YAML `limits`; a file that fails to parse or is
over them is skipped (the syncer reports it), as is anything under ``.git``.
A document without ``metadata.namespace`` counts as `default_namespace`,
where the syncer would apply it. When two documents name the same
HelmRelease, the first (in path order) is the one found.

Texts are read and written byte for byte (``\\r\\n`` stays ``\\r\\n``), so an
edit shows in ``git diff`` as only the values it changed. What this module
does NOT do: edit YAML, run git, or choose anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_operator import boundedyaml
from helm_operator.api.constants import KIND

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ReleaseFile:
    """One HelmRelease document and the file that holds it."""

    path: Path  # absolute
    rel: str  # relative to the checkout root, with '/': what git and messages take
    namespace: str
    name: str
    document: dict[str, Any]  # the HelmRelease as parsed when the index was built

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def read_text(self) -> str:
        """The file's text now (an earlier edit in this checkout may have changed it)."""
        return read_text(self.path)

    def write_text(self, text: str) -> None:
        with open(self.path, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def read_text(file: Path) -> str:
    with open(file, encoding="utf-8", newline="") as f:  # keep \r\n as it is
        return f.read()


class ReleaseIndex:
    """HelmRelease documents by (namespace, name)."""

    def __init__(self, files: Iterable[ReleaseFile]) -> None:
        self._by_key: dict[tuple[str, str], ReleaseFile] = {}
        for file in files:
            self._by_key.setdefault((file.namespace, file.name), file)

    @classmethod
    def scan(cls, root: Path, paths: Sequence[str] = (), default_namespace: str = "default",
             limits: boundedyaml.Limits = boundedyaml.DEFAULT_LIMITS.documents) -> ReleaseIndex:
        """Every HelmRelease document in the YAML files under `paths` of `root` (all of it when empty)."""
        return cls(_documents(root, paths, default_namespace, limits))

    def get(self, namespace: str, name: str) -> ReleaseFile | None:
        return self._by_key.get((namespace, name))

    def __iter__(self) -> Iterator[ReleaseFile]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)


def _yaml_files(root: Path, paths: Sequence[str]) -> Iterator[Path]:
    for base in [root / p for p in paths] if paths else [root]:
        files = [base] if base.is_file() else sorted(base.rglob("*.y*ml")) if base.is_dir() else []
        for file in files:
            if file.suffix in YAML_SUFFIXES and ".git" not in file.relative_to(root).parts:
                yield file


def _documents(root: Path, paths: Sequence[str], default_namespace: str,
               limits: boundedyaml.Limits) -> Iterator[ReleaseFile]:
    for file in _yaml_files(root, paths):
        rel = file.relative_to(root).as_posix()
        try:
            if file.stat().st_size > limits.max_bytes:
                continue
            docs = boundedyaml.load_all(file.read_bytes(), rel, limits)
        except (boundedyaml.YamlError, OSError):
            continue
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != KIND:
                continue
            meta = doc.get("metadata")
            name = meta.get("name") if isinstance(meta, dict) else None
            if isinstance(meta, dict) and isinstance(name, str) and name:
                namespace = meta.get("namespace") or default_namespace
                yield ReleaseFile(file, rel, str(namespace), name, doc)
