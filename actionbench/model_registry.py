"""The registry of known base models (``actionbench/data/models.yaml``) and what ``--model`` resolves to.

A registry name (``sd21-base``, ``sd15``, ``sdxl`` or an alias) stands for a list of hub ids
in preference order: the publisher's repository where it is still online, then maintained
mirrors. Ids whose publisher withdrew them (status ``gone``) are read from an existing local
Hugging Face cache only, so a machine that downloaded them before keeps working and nobody is
sent to a 404. A hub id the registry knows (even a gone one) resolves to its entry too, its own
id first. Any other ``owner/name`` passes through unchanged.

``verify_folder`` checks a downloaded folder's weight files against the registry's SHA-256,
so a mirror can be checked against the original's published hashes.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .errors import ActionBenchError

REGISTRY_FILE = Path(__file__).parent / "data" / "models.yaml"
STATUSES = ("official", "mirror", "gone")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


@dataclass(frozen=True)
class HubId:
    id: str
    status: str  # official | mirror | gone
    note: str = ""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    title: str
    hub_ids: tuple[HubId, ...]
    pipeline: str
    resolution: int
    prediction_type: str
    text_encoders: tuple[dict, ...]
    cross_attention_dim: int
    cross_attention_layers: int | None
    aliases: tuple[str, ...] = ()
    pooled_width: int | None = None
    role: str = ""
    paper: str = ""
    sha256: dict = field(default_factory=dict)  # path in the repository -> hex digest or None
    sha256_source: str = ""

    def status(self, hub_id: str) -> str | None:
        return next((h.status for h in self.hub_ids if h.id.lower() == hub_id.lower()), None)

    @property
    def download_id(self) -> str:
        """The id to download: the first one still online."""
        return next((h.id for h in self.hub_ids if h.status != "gone"), self.hub_ids[0].id)


def _entry(name: str, raw: dict, where: Path) -> ModelEntry:
    def need(key):
        if key not in raw:
            raise ActionBenchError(f"{where}: model '{name}' has no '{key}'")
        return raw[key]

    hub_ids = []
    for h in need("hub_ids"):
        if not isinstance(h, dict) or "id" not in h or h.get("status") not in STATUSES:
            raise ActionBenchError(f"{where}: model '{name}': each hub id needs `id` and a `status` of {'/'.join(STATUSES)} (got {h!r})")
        hub_ids.append(HubId(h["id"], h["status"], h.get("note", "")))
    if not hub_ids:
        raise ActionBenchError(f"{where}: model '{name}' lists no hub ids")
    sha = dict(raw.get("sha256") or {})
    for path, digest in sha.items():
        if digest is not None and (not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef")):
            raise ActionBenchError(f"{where}: model '{name}': sha256 of {path} is not 64 lowercase hex digits")
    return ModelEntry(
        name=name,
        title=raw.get("title", name),
        hub_ids=tuple(hub_ids),
        pipeline=need("pipeline"),
        resolution=int(need("resolution")),
        prediction_type=need("prediction_type"),
        text_encoders=tuple(need("text_encoders")),
        cross_attention_dim=int(need("cross_attention_dim")),
        cross_attention_layers=raw.get("cross_attention_layers"),
        aliases=tuple(raw.get("aliases") or ()),
        pooled_width=raw.get("pooled_width"),
        role=raw.get("role", ""),
        paper=raw.get("paper", ""),
        sha256=sha,
        sha256_source=" ".join(str(raw.get("sha256_source", "")).split()),
    )


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, ModelEntry]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ActionBenchError(f"{path}: not valid YAML ({err})") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise ActionBenchError(f"{path}: expected a `models:` mapping of registry names")
    return {name: _entry(name, raw, Path(path)) for name, raw in models.items()}


def load_registry(path: str | Path | None = None) -> dict[str, ModelEntry]:
    """Registry name -> entry, in the file's order (default: the packaged ``models.yaml``)."""
    return dict(_load(str(path or REGISTRY_FILE)))


def lookup(name: str, registry: dict[str, ModelEntry] | None = None) -> ModelEntry | None:
    """The entry a registry name, alias or known hub id belongs to (case-insensitive), else None."""
    registry = registry if registry is not None else load_registry()
    key = name.strip().lower()
    for entry in registry.values():
        if key == entry.name.lower() or key in (a.lower() for a in entry.aliases):
            return entry
    for entry in registry.values():
        if entry.status(key):
            return entry
    return None


def resolve_model(name: str, registry: dict[str, ModelEntry] | None = None) -> tuple[list[str], ModelEntry | None]:
    """The hub ids to try for ``--model NAME``, in order, and the registry entry (None if unknown).

    A registry name or alias gives its entry's ids; a known hub id comes first, then its
    entry's other ids; any other ``owner/name`` is passed through alone. A bare word that is
    not in the registry is an error naming the registry's names.
    """
    registry = registry if registry is not None else load_registry()
    entry = lookup(name, registry)
    if entry is None:
        if "/" not in name:
            names = [n for e in registry.values() for n in (e.name, *e.aliases)]
            close = difflib.get_close_matches(name.lower(), names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ActionBenchError(
                f"unknown model '{name}': {hint}known names are {', '.join(registry)} (see `actionbench models`); "
                f"or pass a hub id (owner/name), a local diffusers folder, or 'world'"
            )
        return [name], None
    ids = [h.id for h in entry.hub_ids]
    if entry.status(name):  # a hub id: that one first
        first = next(i for i in ids if i.lower() == name.lower())
        ids = [first] + [i for i in ids if i != first]
    return ids, entry


def pipeline_class_name(name: str) -> str | None:
    """The diffusers pipeline class a registry name or known hub id needs (None if unknown)."""
    entry = lookup(name)
    return entry.pipeline if entry else None


def _reason(err: Exception) -> str:
    kind = type(err).__name__
    if "RepositoryNotFound" in kind or "404" in str(err).split("\n", 1)[0]:
        return "not found on the hub"
    if "LocalEntryNotFound" in kind or "offline" in str(err).lower() or "local_files_only" in str(err):
        return "not in the local cache"
    return kind


def download_hint(hub_id: str) -> str:
    return (
        f"on a machine with internet run `hf download {hub_id} --local-dir DIR` (`huggingface-cli download` before "
        f"huggingface_hub 1.0), copy DIR here and pass --model DIR (or --model world for the built-in ActionWorld model)"
    )


def not_loaded_error(model: str, tried: list[tuple[str, str]], entry: ModelEntry | None) -> ActionBenchError:
    """The one-line error after every candidate failed: what was tried, the mirrors, a local-folder hint."""
    if entry is None:
        hub_id, reason = tried[0]
        return ActionBenchError(
            f"model '{model}' could not be loaded ({reason}): it is neither a local diffusers folder nor in the "
            f"Hugging Face cache, and it cannot be downloaded from here; {download_hint(hub_id)}. "
            f"Known base models: {', '.join(load_registry())} (`actionbench models`)"
        )
    known_as = "" if model == entry.name else f", registry name {entry.name}"
    attempts = ", ".join(f"{i} ({entry.status(i)}: {r})" for i, r in tried)
    return ActionBenchError(
        f"model '{model}' ({entry.title}{known_as}) could not be loaded: tried {attempts}; {download_hint(entry.download_id)}"
    )


def load_from_hub(model: str, pipeline_cls, **kwargs):
    """``pipeline_cls.from_pretrained`` on the first hub id of ``model`` that loads.

    Each id is tried online (the hub, or the cache where the hub is unreachable), then from
    the local cache only; ids of status ``gone`` from the cache only. Raises the one-line
    ``not_loaded_error`` when none loads.
    """
    candidates, entry = resolve_model(model)
    if entry is not None and entry.pipeline != pipeline_cls.__name__:
        raise ActionBenchError(
            f"model '{model}' ({entry.title}) needs diffusers' {entry.pipeline}; this loader builds {pipeline_cls.__name__}"
        )
    tried = []
    for hub_id in candidates:
        cache_only = entry is not None and entry.status(hub_id) == "gone"
        attempts = (True,) if cache_only else (False, True)
        first_err = None
        for local_only in attempts:
            try:
                return pipeline_cls.from_pretrained(hub_id, local_files_only=local_only, **kwargs)
            except Exception as err:  # hub errors differ by version; all mean "not available here"
                first_err = first_err or err
        tried.append((hub_id, _reason(first_err)))
    raise not_loaded_error(model, tried, entry)


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class FileCheck:
    path: str  # relative to the folder, with /
    status: str  # ok | mismatch | absent (hashed in the registry, not in the folder) | unlisted (no published hash)
    expected: str | None = None
    actual: str | None = None


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _model_folder(folder: Path) -> Path:
    """``folder``, or its one snapshot when given a Hugging Face cache folder (models--owner--name)."""
    snapshots = folder / "snapshots"
    if not (folder / "model_index.json").exists() and snapshots.is_dir():
        found = [p for p in snapshots.iterdir() if p.is_dir()]
        if len(found) == 1:
            return found[0]
        raise ActionBenchError(f"{folder} is a Hugging Face cache folder with {len(found)} snapshots: pass one of {snapshots}/*")
    return folder


def verify_folder(folder: str | Path, name: str, registry: dict[str, ModelEntry] | None = None) -> list[FileCheck]:
    """Hash the weight files of a downloaded model folder and compare them with the registry's SHA-256."""
    registry = registry if registry is not None else load_registry()
    entry = lookup(name, registry)
    if entry is None:
        raise ActionBenchError(f"unknown model '{name}': known names are {', '.join(registry)}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ActionBenchError(f"model folder '{folder}' does not exist")
    folder = _model_folder(folder)
    checks = []
    for rel, expected in entry.sha256.items():
        path = folder / rel
        if not path.is_file():
            if expected:
                checks.append(FileCheck(rel, "absent", expected))
            continue
        if expected is None:
            checks.append(FileCheck(rel, "unlisted"))
            continue
        actual = sha256_file(path)
        checks.append(FileCheck(rel, "ok" if actual == expected else "mismatch", expected, actual))
    listed = set(entry.sha256)
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES and rel not in listed and not rel.startswith("."):
            checks.append(FileCheck(rel, "unlisted"))
    return checks


def check_folder(folder: str | Path, name: str, registry: dict[str, ModelEntry] | None = None) -> list[FileCheck]:
    """``verify_folder``, raising a one-line error on any mismatch or when nothing could be checked."""
    checks = verify_folder(folder, name, registry)
    entry = lookup(name, registry if registry is not None else load_registry())
    bad = [c for c in checks if c.status == "mismatch"]
    if bad:
        files = ", ".join(f"{c.path} (sha256 {c.actual[:12]}..., expected {c.expected[:12]}...)" for c in bad)
        raise ActionBenchError(f"{folder} does not match {entry.name} ({entry.title}): {files} differ")
    if not any(c.status == "ok" for c in checks):
        known = ", ".join(p for p, h in entry.sha256.items() if h) or "none"
        raise ActionBenchError(f"{folder}: none of the files with a published sha256 for {entry.name} is there ({known})")
    return checks


def describe(entry: ModelEntry, default: bool = False) -> str:
    """A few lines for ``actionbench models``."""
    enc = " + ".join(f"{t.get('model', t.get('subfolder'))} ({t['width']})" for t in entry.text_encoders)
    pooled = f", pooled {entry.pooled_width}" if entry.pooled_width else ""
    layers = entry.cross_attention_layers if entry.cross_attention_layers is not None else "?"
    aliases = f" (also {', '.join(entry.aliases)})" if entry.aliases else ""
    width = max(len(h.id) for h in entry.hub_ids)
    lines = [
        f"{entry.name}{aliases}{' [the default --model]' if default else ''}: {entry.title}",
        f"    {entry.pipeline}, {entry.resolution} px, {entry.prediction_type}; text: {enc}{pooled}; "
        f"{layers} cross-attention layers",
    ]
    for h in entry.hub_ids:
        status = "gone (read from a local cache only)" if h.status == "gone" else h.status
        lines.append(f"    {h.id:{width}s}  {status}")
    n = sum(1 for v in entry.sha256.values() if v)
    lines.append(f"    sha256 known for {n} of {len(entry.sha256)} weight files (`actionbench models verify DIR --as {entry.name}`)")
    return "\n".join(lines)
