"""Loading an action's exemplars: ActionBench folders, World-ActionBench folders, plain folders.

Layout (../shared/ActionBench): ``<action>/NN.jpg`` (or ``.png``) with ``text.json``
mapping each image file name to a list of prompt templates whose ``{}`` stands for the
action phrase, and optionally ``NN.txt`` with the original caption. A plain folder of
images loads too when one ``template`` is given for all of them.

Action-different images (ADI, spec section 3) for exemplar ``NN.jpg`` live in
``<dir>/NN/`` where ``<dir>`` is the user's folder, or ``<action>/action_different``
when the benchmark ships them (World-ActionBench does).

Optional ``poses.json`` (World-ActionBench ships it): ``{"01.png": [[x, y] or null, ...], ...}``,
each exemplar's 18 OpenPose (COCO-18) body keypoints in [0, 1] image coordinates;
loaded as ``Exemplar.keypoints`` (the ControlNet baseline then needs no pose detector).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .catalog import action_phrase
from .errors import ActionBenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def check_template(template: str, where: str) -> str:
    """A template must hold exactly one ``{}`` (where the action goes)."""
    if template.count("{}") != 1:
        raise ActionBenchError(f"{where}: template {template!r} must contain '{{}}' exactly once (where the action goes)")
    return template


def open_image(path: str | Path) -> Image.Image:
    """Open an image as RGB, or raise a one-line error naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError:
        raise ActionBenchError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ActionBenchError(f"{path}: unreadable or corrupt image ({err})") from None


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Exemplar:
    """One photo of the action with its action-free prompt template."""

    image_path: Path
    template: str  # e.g. "Young fit woman {} in studio"
    caption: str | None = None
    keypoints: tuple[tuple[float, float] | None, ...] | None = None  # 18 OpenPose keypoints from poses.json

    @property
    def key(self) -> str:
        """The exemplar's id inside its action: the file stem (``"01"``)."""
        return self.image_path.stem

    def prompt(self, fill: str) -> str:
        return self.template.format(fill)

    def image(self) -> Image.Image:
        return open_image(self.image_path)


@dataclass(frozen=True)
class ActionSet:
    """The exemplars of one action."""

    name: str
    root: Path
    exemplars: tuple[Exemplar, ...]
    phrase: str | None = None  # the action as text ("performs a handstand"), if known
    action_different_dir: Path | None = None
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.exemplars)

    def action_different(self, exemplar: Exemplar) -> list[Path]:
        """Images of the exemplar's person and scene doing other actions (may be empty)."""
        if self.action_different_dir is None:
            return []
        folder = self.action_different_dir / exemplar.key
        return image_files(folder) if folder.is_dir() else []


def _read_text_json(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ActionBenchError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, (list, str)) and v for v in data.values()
    ):
        raise ActionBenchError(f'{path}: expected {{"NN.jpg": ["template with {{}}", ...], ...}}')
    return {k: [v] if isinstance(v, str) else list(v) for k, v in data.items()}


N_KEYPOINTS = 18


def _read_poses_json(path: Path) -> dict[str, tuple]:
    """``poses.json``: image file name -> 18 keypoints ((x, y) in [0, 1] or None)."""
    where = f'{path}: expected {{"NN.png": [[x, y] or null, ... {N_KEYPOINTS} OpenPose keypoints], ...}}'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ActionBenchError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ActionBenchError(where)
    poses = {}
    for name, points in data.items():
        if not isinstance(points, list) or len(points) != N_KEYPOINTS:
            raise ActionBenchError(f"{where} [{name}]")
        kp = []
        for p in points:
            if p is None:
                kp.append(None)
            elif isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p):
                kp.append((float(p[0]), float(p[1])))
            else:
                raise ActionBenchError(f"{where} [{name}]")
        poses[name] = tuple(kp)
    return poses


def load_action(
    path: str | Path,
    template: str | None = None,
    phrase: str | None = None,
    action_different_dir: str | Path | None = None,
    verify_images: bool = True,
) -> ActionSet:
    """Load one action folder into an :class:`ActionSet`.

    ``template`` (one ``{}``) is used for every image of a plain folder and overrides
    ``text.json``. ``phrase`` defaults to the paper's phrase for the folder's name.
    """
    root = Path(path)
    if not root.exists():
        raise ActionBenchError(f"{root}: no such folder")
    if not root.is_dir():
        raise ActionBenchError(f"{root}: not a folder (give the folder that holds the action's images)")
    images = image_files(root)
    if not images:
        raise ActionBenchError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    templates: dict[str, list[str]] = {}
    if template is not None:
        check_template(template, "--template")
    elif (root / "text.json").exists():
        templates = _read_text_json(root / "text.json")
        for name in templates:
            if not (root / name).exists():
                raise ActionBenchError(f"{root / 'text.json'}: names {name!r}, which is not in {root}")
    else:
        raise ActionBenchError(f"{root}: no text.json; pass a prompt template with '{{}}' for the action (--template)")
    poses = _read_poses_json(root / "poses.json") if (root / "poses.json").exists() else {}
    exemplars = []
    for img in images:
        if template is not None:
            tpl = template
        elif img.name in templates:
            tpl = check_template(templates[img.name][0], f"{root / 'text.json'} [{img.name}]")
        else:
            raise ActionBenchError(f"{root / 'text.json'}: no template for {img.name}; add one or pass --template")
        if verify_images:
            open_image(img)
        caption_file = img.with_suffix(".txt")
        caption = caption_file.read_text(encoding="utf-8").strip() if caption_file.exists() else None
        exemplars.append(Exemplar(img, tpl, caption, poses.get(img.name)))
    if action_different_dir is None and (root / "action_different").is_dir():
        action_different_dir = root / "action_different"
    if action_different_dir is not None:
        action_different_dir = Path(action_different_dir)
        if not action_different_dir.is_dir():
            raise ActionBenchError(f"{action_different_dir}: no such folder (action-different images, DIR/NN/*.png)")
    return ActionSet(
        name=root.name,
        root=root,
        exemplars=tuple(exemplars),
        phrase=phrase if phrase is not None else action_phrase(root.name),
        action_different_dir=action_different_dir,
    )


def load_benchmark(root: str | Path, verify_images: bool = True) -> dict[str, ActionSet]:
    """Every action folder under ``root`` (ActionBench or World-ActionBench), by name."""
    root = Path(root)
    if not root.is_dir():
        raise ActionBenchError(f"{root}: no such benchmark folder")
    sets = {
        d.name: load_action(d, verify_images=verify_images)
        for d in sorted(root.iterdir())
        if d.is_dir() and (d / "text.json").exists()
    }
    if not sets:
        raise ActionBenchError(f"{root}: no action folders (each needs images and a text.json)")
    return sets
