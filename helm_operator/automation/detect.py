"""Which container images a HelmRelease uses and where they live in its values (pure).

Place in the flow: registry scan ─▶ policy ─▶ **detect** / yamledit ─▶ commit.
Given a HelmRelease as parsed from Git or read from the cluster (plain
dicts), this module

- finds the images: the well-known value shapes (top level: container
  ``chart-image``; one key deep: container named for the key) and the paths
  named by ``repository.fluxcd.io/<c>``, ``registry.fluxcd.io/<c>`` and
  ``tag.fluxcd.io/<c>`` (`paths`; an alias wins over a detected image of that
  name);
- says, for a new tag, exactly which scalars to write (`updates_for`), keeping
  the shape it found: a whole ``repo:tag`` string is rewritten whole, a split
  shape gets only its tag scalar, and every comma-separated path gets the value.

A broken annotation becomes an `ImageError` for that container; the other
containers are still found. Image references are kept as written (no
``docker.io/library/`` normalisation); `imageref` only splits them.

What this module does NOT do: no registry calls, no reading of the policy
annotations (`api.automation`), no filter parsing or tag choice (`policy`),
no YAML text (`yamledit`), no Git.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from helm_operator.api.automation import REGISTRY_PREFIX, REPOSITORY_PREFIX, TAG_PREFIX
from helm_operator.automation.imageref import ImageRef, check_tag, is_tag, parse_image_ref
from helm_operator.automation.paths import (
    PathError, PathSegments, format_dot_path, parse_path_list, resolve_path,
)

CHART_IMAGE = "chart-image"  # the container name of an image at the top of spec.values
VALUES_PATH: tuple[str, ...] = ("spec", "values")


class Role(StrEnum):
    """What the scalar at a location holds."""

    IMAGE = "image"  # a whole "repo:tag" (without the host when a REGISTRY location exists)
    REGISTRY = "registry"  # the host only
    REPOSITORY = "repository"  # the repository without a tag
    TAG = "tag"  # the tag only


class Shape(StrEnum):
    """The value shape an image was found in; a write keeps it."""

    IMAGE = "image: repo:tag"
    IMAGE_TAG = "image + tag"
    REGISTRY_IMAGE = "registry + image"  # Flux v1 read this too: image holds repo:tag
    REGISTRY_IMAGE_TAG = "registry + image + tag"
    IMAGE_MAP = "image.repository + image.tag"
    IMAGE_MAP_REGISTRY = "image.{registry,repository,tag}"
    MAPPED = "annotation paths"


@dataclass(frozen=True)
class ValuePath:
    """One scalar an image is read from or written to; `segments` are below spec.values."""

    role: Role
    segments: PathSegments
    current: str  # the value there now (for extra comma-separated paths: the first path's)

    @property
    def document_path(self) -> PathSegments:
        """The path from the document root, as `yamledit.set_values` takes it."""
        return (*VALUES_PATH, *self.segments)

    @property
    def dotted(self) -> str:
        return format_dot_path(self.segments)


@dataclass(frozen=True)
class ContainerImage:
    """One container's image: its reference, split, and where each part lives."""

    name: str
    image_ref: str  # "registry/repo:tag" composed from the values, as written
    repository: str  # image_ref without tag and digest (host included)
    tag: str
    digest: str
    shape: Shape
    locations: tuple[ValuePath, ...]
    mapped: bool = False  # named by path annotations rather than detected

    @property
    def ref(self) -> ImageRef:
        return ImageRef(self.repository, self.tag, self.digest)

    @property
    def registry(self) -> str:
        return self.ref.domain


@dataclass(frozen=True)
class ImageError:
    """Why one container's annotations could not be used; the rest still work."""

    container: str
    annotation: str
    message: str

    def __str__(self) -> str:
        return f"container {self.container!r}: {self.annotation}: {self.message}"


@dataclass(frozen=True)
class ReleaseImages:
    containers: tuple[ContainerImage, ...]
    errors: tuple[ImageError, ...] = ()

    def get(self, name: str) -> ContainerImage | None:
        return next((c for c in self.containers if c.name == name), None)


def find_images(release: Mapping[str, Any]) -> ReleaseImages:
    """All images of a HelmRelease: detected shapes, then annotation aliases over them."""
    spec = release.get("spec") or {}
    values = spec.get("values") if isinstance(spec, Mapping) else None
    metadata = release.get("metadata") or {}
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    values = values if isinstance(values, Mapping) else {}
    by_name = {c.name: c for c in detect_images(values)}
    mapped, errors = mapped_images(annotations or {}, values)
    for error in errors:  # a broken alias hides the detected image: the user meant other paths
        by_name.pop(error.container, None)
    # An alias wins over a detected image, by name and by place: a detected
    # image living at paths an alias names is the same image, and two
    # containers writing one value under different filters would fight.
    aliased = {loc.segments for c in mapped for loc in c.locations}
    for name, detected in list(by_name.items()):
        if any(loc.segments in aliased for loc in detected.locations):
            del by_name[name]
    for container in mapped:
        by_name[container.name] = container
    return ReleaseImages(tuple(by_name.values()), tuple(errors))


def detect_images(values: Mapping[str, Any]) -> list[ContainerImage]:
    """Images in the well-known shapes: at the top (``chart-image``) or one key deep."""
    found: list[ContainerImage] = []
    top = _detect(CHART_IMAGE, values, ())
    if top is not None:
        found.append(top)
    for key, value in values.items():
        if isinstance(key, str) and isinstance(value, Mapping):
            container = _detect(key, value, (key,))
            if container is not None:
                found.append(container)
    return found


def _detect(name: str, m: Mapping[str, Any], base: PathSegments) -> ContainerImage | None:
    """One container spec: ``image`` as a string (with optional siblings) or as a map."""
    image = m.get("image")
    if isinstance(image, Mapping):
        return _detect_image_map(name, image, (*base, "image"))
    if not isinstance(image, str):
        return None
    registry, tag = m.get("registry"), m.get("tag")
    if any(k in m and not isinstance(m[k], str) for k in ("registry", "tag")):
        return None  # `tag: 1.0` is a float: writing the image string would leave it stale
    has_registry, has_tag = "registry" in m, "tag" in m
    locations = []
    if has_registry:
        locations.append(ValuePath(Role.REGISTRY, (*base, "registry"), str(registry)))
    if has_tag:
        shape = Shape.REGISTRY_IMAGE_TAG if has_registry else Shape.IMAGE_TAG
        locations += [ValuePath(Role.REPOSITORY, (*base, "image"), image), ValuePath(Role.TAG, (*base, "tag"), str(tag))]
    else:
        shape = Shape.REGISTRY_IMAGE if has_registry else Shape.IMAGE
        locations.append(ValuePath(Role.IMAGE, (*base, "image"), image))
    try:
        ref = _compose(str(registry) if has_registry else "", image, str(tag) if has_tag else None)
    except ValueError:
        return None
    return _container(name, ref, shape, locations, mapped=False)


def _detect_image_map(name: str, image: Mapping[str, Any], base: PathSegments) -> ContainerImage | None:
    repository, tag, registry = image.get("repository"), image.get("tag"), image.get("registry")
    if not (isinstance(repository, str) and isinstance(tag, str)):
        return None
    locations = [ValuePath(Role.REPOSITORY, (*base, "repository"), repository), ValuePath(Role.TAG, (*base, "tag"), str(tag))]
    shape = Shape.IMAGE_MAP
    if isinstance(registry, str):
        locations.insert(0, ValuePath(Role.REGISTRY, (*base, "registry"), registry))
        shape = Shape.IMAGE_MAP_REGISTRY
    try:
        ref = _compose(registry if isinstance(registry, str) else "", repository, tag)
    except ValueError:
        return None
    return _container(name, ref, shape, locations, mapped=False)


def _compose(registry: str, image: str, tag: str | None) -> ImageRef:
    """registry + image (+ a separate tag, which replaces any tag in image, as Flux v1 did)."""
    ref = parse_image_ref(f"{registry.rstrip('/')}/{image}" if registry else image)
    if tag is not None:
        if tag:
            check_tag(tag)
        ref = ImageRef(ref.repository, tag, ref.digest)
    return ref


def _container(name: str, ref: ImageRef, shape: Shape, locations: Sequence[ValuePath], mapped: bool) -> ContainerImage:
    return ContainerImage(name, str(ref), ref.repository, ref.tag, ref.digest, shape, tuple(locations), mapped)


def mapped_images(annotations: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[list[ContainerImage], list[ImageError]]:
    """Containers named by ``repository.fluxcd.io/<c>`` (+ registry, tag); one error per bad one."""
    paths: dict[str, dict[Role, tuple[str, str]]] = {}
    for prefix, role in ((REGISTRY_PREFIX, Role.REGISTRY), (REPOSITORY_PREFIX, Role.REPOSITORY), (TAG_PREFIX, Role.TAG)):
        for key, value in annotations.items():
            if isinstance(key, str) and key.startswith(prefix):
                paths.setdefault(key[len(prefix):], {})[role] = (key, value if isinstance(value, str) else "")
    found: list[ContainerImage] = []
    errors: list[ImageError] = []
    for name in sorted(paths):
        try:
            found.append(_mapped(name, paths[name], values))
        except _MappingError as e:
            errors.append(ImageError(name or "<empty>", e.annotation, e.message))
    return found, errors


class _MappingError(Exception):
    def __init__(self, annotation: str, message: str) -> None:
        super().__init__(message)
        self.annotation, self.message = annotation, message


def _mapped(name: str, annotated: Mapping[Role, tuple[str, str]], values: Mapping[str, Any]) -> ContainerImage:
    """One aliased container: read each role's first path, compose, keep every path for writes."""
    any_key = next(iter(annotated.values()))[0]
    if not name:
        raise _MappingError(any_key, "the annotation names no container after the prefix")
    if Role.REPOSITORY not in annotated:
        raise _MappingError(REPOSITORY_PREFIX + name, f"missing; it is required with {any_key}")
    read: dict[Role, list[ValuePath]] = {}
    for role, (key, text) in annotated.items():
        read[role] = _read_paths(role, key, text, values)
    has_tag = Role.TAG in read
    if not has_tag:  # the repository path holds "repo:tag": it is written whole
        read[Role.IMAGE] = [replace(p, role=Role.IMAGE) for p in read.pop(Role.REPOSITORY)]
    first = {role: ps[0].current for role, ps in read.items()}
    if has_tag and first[Role.TAG] and not is_tag(first[Role.TAG]):
        raise _MappingError(annotated[Role.TAG][0], f"{first[Role.TAG]!r} is not a valid image tag")
    image = first.get(Role.REPOSITORY, first.get(Role.IMAGE, ""))
    try:
        ref = _compose(first.get(Role.REGISTRY, ""), image, first.get(Role.TAG))
    except ValueError:
        composed = "/".join(filter(None, [first.get(Role.REGISTRY), image]))
        raise _MappingError(annotated[Role.REPOSITORY][0],
                            f"the values there make {composed!r}, not an image reference") from None
    order = (Role.REGISTRY, Role.REPOSITORY, Role.IMAGE, Role.TAG)
    locations = [p for role in order for p in read.get(role, [])]
    return _container(name, ref, Shape.MAPPED, locations, mapped=True)


def _read_paths(role: Role, key: str, text: str, values: Mapping[str, Any]) -> list[ValuePath]:
    """Parse a comma-separated path list; the first path must hold a string, the rest must exist."""
    try:
        wanted = parse_path_list(text)
    except PathError as e:
        raise _MappingError(key, str(e)) from None
    located: list[ValuePath] = []
    current = ""
    for i, segments in enumerate(wanted):
        try:
            used, value = resolve_path(values, segments)
        except PathError as e:
            raise _MappingError(key, f"spec.values.{e}") from None
        if i == 0:
            if not isinstance(value, str):
                what = "a map or list" if isinstance(value, (Mapping, list)) else f"{type(value).__name__} {value!r}"
                hint = "; quote it in the YAML" if not isinstance(value, (Mapping, list, type(None))) else ""
                raise _MappingError(key, f"spec.values.{format_dot_path(used)} is {what}, not a string{hint}")
            current = value
        elif isinstance(value, (Mapping, list)):
            raise _MappingError(key, f"spec.values.{format_dot_path(used)} is a map or list, not a scalar")
        located.append(ValuePath(role, used, current))
    return located


# --- writes ------------------------------------------------------------------


def updates_for(container: ContainerImage, new_tag: str) -> list[tuple[PathSegments, str]]:
    """The scalar writes (document paths, new text values) that move a container to `new_tag`.

    Split shapes change only their tag scalars; a whole ``repo:tag`` string is
    rewritten with the new tag (a digest is dropped). Paths already holding
    the value are still listed: `yamledit` leaves them byte for byte.
    """
    check_tag(new_tag)
    tags = [p for p in container.locations if p.role is Role.TAG]
    if tags:
        return [(p.document_path, new_tag) for p in tags]
    images = [p for p in container.locations if p.role is Role.IMAGE]
    if not images:
        raise ValueError(f"container {container.name!r} has no tag or image location to write")
    value = str(parse_image_ref(images[0].current).with_tag(new_tag))
    return [(p.document_path, value) for p in images]
