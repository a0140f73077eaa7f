"""The exact OpenPose skeleton of any ActionWorld render.

The renderer knows every joint, so no detector is needed: :func:`render_keypoints` gives
the 18 OpenPose (COCO-18) body keypoints of ``render(subject, action, context, seed, size)``
in [0, 1] image coordinates, through the renderer's own placement
(:func:`actionbench.world.render.placement`: scale, position, the handstand's 180-degree
rotation, the mirror flip), and :func:`render_skeleton` draws them with
:func:`actionbench.pose_drawing.skeleton_image`, the OpenPose drawing the ControlNet reads.

Order (OpenPose / ControlNet annotator): nose, neck, right shoulder, elbow, wrist, left
shoulder, elbow, wrist, right hip, knee, ankle, left hip, knee, ankle, right eye, left eye,
right ear, left ear. The neck is the mid-point of the shoulders (as for MediaPipe poses);
wrists are the hands' centres and ankles the feet's. Nose, eyes and ears are points of the
head frame (its centre and up-direction, scaled by the kind's head size), at the places a
human face has them, for every kind: animals get the human skeleton, as a pose detector
would give them.

"Right" is the person's right (OpenPose's convention). Characters face the viewer, so the
person's right is the renderer's "l" side (drawn on the image's left of an upright
figure); mirroring swaps the sides, the handstand's in-plane rotation does not.
"""

from __future__ import annotations

from PIL import Image

from . import render as R

COCO18 = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
# face points in the head frame (x towards the renderer's "r" side, y down; unit = head radius)
NOSE, EYE, EAR = (0.0, 0.3), (0.35, -0.05), (1.0, 0.0)

Keypoint = tuple[float, float] | None


def render_keypoints(subject: str, action: str, context: str, seed: int = 0, size: int = 64, world=R) -> list[Keypoint]:
    """The 18 COCO-18 keypoints of the render, (x, y) in [0, 1] (None: outside the image);
    ``world`` the renderer module (v2b's :mod:`.render` or :mod:`.render_v3`)."""
    return placement_keypoints(world.placement(subject, action, context, seed, size))


def placement_keypoints(place: R.Placement) -> list[Keypoint]:
    """The 18 COCO-18 keypoints of a placed character (any world's renderer), as above."""
    sk = R.skeleton(place.pose)
    j = sk.joints
    right, left = ("r", "l") if place.mirror else ("l", "r")  # the person's right / left, renderer's names
    side = {"r": 1.0, "l": -1.0}
    k = place.app["head"]

    def face(x: float, y: float):
        return R._local(j["head"], sk.torso_dir, [(x * k, y * k)])[0]

    body = [
        face(*NOSE),
        (j["shoulder_r"] + j["shoulder_l"]) / 2,
        *(j[f"{part}_{right}"] for part in ("shoulder", "elbow", "hand")),
        *(j[f"{part}_{left}"] for part in ("shoulder", "elbow", "hand")),
        *(j[f"{part}_{right}"] for part in ("hip", "knee", "foot")),
        *(j[f"{part}_{left}"] for part in ("hip", "knee", "foot")),
        face(side[right] * EYE[0], EYE[1]), face(side[left] * EYE[0], EYE[1]),
        face(side[right] * EAR[0], EAR[1]), face(side[left] * EAR[0], EAR[1]),
    ]
    points = [place.to_image(q) for q in body]
    return [(x, y) if 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 else None for x, y in points]


def render_skeleton(subject: str, action: str, context: str, seed: int = 0, size: int = 64, world=R) -> Image.Image:
    """The render's OpenPose skeleton on a black ``size`` square (what the world ControlNet reads)."""
    from ..pose_drawing import skeleton_image

    return skeleton_image(render_keypoints(subject, action, context, seed, size, world), size)


def keypoints_json(keypoints: list[Keypoint], digits: int = 4) -> list:
    """Keypoints as JSON-ready lists ([x, y] or None), rounded (deterministic files)."""
    return [[round(p[0], digits), round(p[1], digits)] if p is not None else None for p in keypoints]


def skeleton_grid(subjects=("man", "fox", "bear"), actions=None, context: str = "park", seed: int = 0, size: int = 64, pad: int = 2) -> Image.Image:
    """Renders (odd rows) over their skeletons (even rows), subjects x actions, for the docs."""
    actions = actions or R.ACTIONS
    grid = Image.new("RGB", (len(actions) * (size + pad) + pad, 2 * len(subjects) * (size + pad) + pad), (255, 255, 255))
    for i, s in enumerate(subjects):
        for k, a in enumerate(actions):
            x, y = pad + k * (size + pad), pad + 2 * i * (size + pad)
            grid.paste(R.render(s, a, context, seed + i + k, size), (x, y))
            grid.paste(render_skeleton(s, a, context, seed + i + k, size), (x, y + size + pad))
    return grid
