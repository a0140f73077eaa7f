"""Pose skeletons of exemplars, drawn the way OpenPose ControlNets were trained to read them.

Detection: controlnet-aux's OpenPose detector where it imports and its weights can be
had (``pip install controlnet-aux``; it needs torchvision, which does not import beside
the CPU torch build used here, so it is an optional extra); otherwise MediaPipe Pose
(``mediapipe==0.10.21`` ships its model files, so it works offline). MediaPipe's 33
landmarks are mapped to OpenPose's COCO-18 body keypoints (the neck is the mid-point of
the shoulders) and drawn with controlnet-aux's ``draw_bodypose`` when it imports, or with
:func:`draw_openpose`, our copy of the same drawing: limbs as ellipses in OpenPose's limb
colours at 60% intensity, joints as filled circles, on black.

Exemplars are not square and generated images are: the skeleton is drawn on a square
canvas with the photo letterboxed in its centre **(ours)**, so no limb is cut off.

Keypoints may also be *given* (World-ActionBench ships each exemplar's exact skeleton in
``poses.json``): :func:`given_pose_image` draws them without any detector. Skeletons
smaller than ``MIN_CANVAS`` are drawn at that size and downsampled **(ours)**, so that
OpenPose's fixed 4-pixel limbs and joints stay in proportion on a 64-pixel image.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from PIL import Image, ImageDraw

# COCO-18 order: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip,
# r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear.
# MediaPipe Pose landmark index for each (None: the neck, computed from the shoulders).
MEDIAPIPE_TO_COCO18 = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
# OpenPose's limbs (1-based keypoint pairs) and colours, as in ControlNet's annotator.
LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11),
    (2, 12), (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18),
)
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
STICK_WIDTH = 4
MIN_CANVAS = 128  # smaller skeletons are drawn at this side, then downsampled

Keypoints = list  # 18 entries of (x, y) in [0, 1] canvas coordinates, or None


def letterbox(image: Image.Image, size: int) -> tuple[Image.Image, tuple[float, float, float]]:
    """The image scaled into a black ``size`` square, and (scale, x offset, y offset) in pixels."""
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (size, size))
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas.paste(image.convert("RGB").resize((nw, nh), Image.BICUBIC), (ox, oy))
    return canvas, (scale, ox, oy)


def mediapipe_keypoints(image: Image.Image, min_visibility: float = 0.5) -> Keypoints | None:
    """COCO-18 keypoints (normalised to the image) from MediaPipe Pose, or None if no person is found."""
    import mediapipe as mp

    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        result = pose.process(np.asarray(image.convert("RGB")))
    if result.pose_landmarks is None:
        return None
    lm = result.pose_landmarks.landmark

    def point(i):
        p = lm[i]
        return (p.x, p.y) if p.visibility >= min_visibility and 0 <= p.x <= 1 and 0 <= p.y <= 1 else None

    points = [point(i) if i is not None else None for i in MEDIAPIPE_TO_COCO18]
    right, left = point(12), point(11)
    points[1] = ((right[0] + left[0]) / 2, (right[1] + left[1]) / 2) if right and left else None
    return points if any(points) else None


def _ellipse(cx: float, cy: float, half_length: float, half_width: float, angle_deg: float, n: int = 36):
    a = math.radians(angle_deg)
    return [
        (cx + half_length * math.cos(t) * math.cos(a) - half_width * math.sin(t) * math.sin(a),
         cy + half_length * math.cos(t) * math.sin(a) + half_width * math.sin(t) * math.cos(a))
        for t in (2 * math.pi * k / n for k in range(n))
    ]


def draw_openpose(keypoints: Keypoints, size: int) -> Image.Image:
    """OpenPose's body drawing (ControlNet annotator ``draw_bodypose``) on a black ``size`` square."""
    canvas = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(canvas)
    px = [(x * size, y * size) if p is not None else None for p in keypoints for x, y in [p or (0, 0)]]
    for (a, b), color in zip(LIMBS, COLORS):
        pa, pb = px[a - 1], px[b - 1]
        if pa is None or pb is None:
            continue
        length = math.dist(pa, pb)
        angle = math.degrees(math.atan2(pb[1] - pa[1], pb[0] - pa[0]))
        poly = _ellipse((pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2, length / 2, STICK_WIDTH, angle)
        draw.polygon(poly, fill=tuple(int(c * 0.6) for c in color))
    for p, color in zip(px, COLORS):
        if p is not None:
            draw.ellipse((p[0] - 4, p[1] - 4, p[0] + 4, p[1] + 4), fill=color)
    return canvas


def draw_skeleton(keypoints: Keypoints, size: int) -> Image.Image:
    """controlnet-aux's drawing when it imports, else :func:`draw_openpose` (the same picture)."""
    try:
        from controlnet_aux.open_pose.body import Keypoint
        from controlnet_aux.open_pose.util import draw_bodypose
    except Exception:  # not installed, or torchvision missing beside this torch build
        return draw_openpose(keypoints, size)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    points = [Keypoint(x, y) if p is not None else None for p in keypoints for x, y in [p or (0, 0)]]
    return Image.fromarray(draw_bodypose(canvas, points))


def skeleton_image(keypoints: Keypoints, size: int, draw=None) -> Image.Image:
    """Keypoints drawn by ``draw`` (default :func:`draw_openpose`) on a black ``size`` square;
    below ``MIN_CANVAS`` drawn at that side and downsampled, so limbs keep their proportion."""
    draw = draw or draw_openpose
    canvas = max(size, MIN_CANVAS)
    image = draw(keypoints, canvas)
    return image if canvas == size else image.resize((size, size), Image.Resampling.BOX)


def letterbox_keypoints(keypoints: Keypoints, image_size: tuple[int, int]) -> Keypoints:
    """Keypoints normalised to a (w, h) image -> normalised to its letterboxed square (:func:`letterbox`)."""
    w, h = image_size
    side = max(w, h)
    return [((x * w + (side - w) / 2) / side, (y * h + (side - h) / 2) / side) if p is not None else None
            for p in keypoints for x, y in [p or (0, 0)]]


def given_pose_image(image: Image.Image, keypoints: Keypoints, size: int = 512) -> Image.Image | None:
    """Given keypoints of ``image`` (normalised to it) as a skeleton on a black ``size`` square, letterboxed
    like :func:`pose_image`; None if no keypoint is given."""
    if not keypoints or not any(p is not None for p in keypoints):
        return None
    return skeleton_image(letterbox_keypoints(keypoints, image.size), size)


def openpose_detector():
    """controlnet-aux's OpenPose detector, or None where it does not import or has no weights."""
    try:
        from controlnet_aux import OpenposeDetector

        return OpenposeDetector.from_pretrained("lllyasviel/Annotators")
    except Exception as err:  # ImportError, or the weights cannot be downloaded offline
        warnings.warn(f"controlnet-aux OpenPose unavailable ({type(err).__name__}); using MediaPipe pose", stacklevel=2)
        return None


def pose_image(image: Image.Image, size: int = 512, detector: str = "auto", openpose=None) -> Image.Image | None:
    """The exemplar's skeleton on a black square of ``size`` (photo letterboxed), or None if no person.

    ``detector``: "openpose" (controlnet-aux; ``openpose`` is its loaded detector),
    "mediapipe", or "auto" (OpenPose when ``openpose`` is given, else MediaPipe).
    """
    square, _ = letterbox(image, size)
    if detector == "openpose" or (detector == "auto" and openpose is not None):
        if openpose is None:
            raise RuntimeError("detector 'openpose' needs controlnet-aux and its weights (lllyasviel/Annotators)")
        out = openpose(square, detect_resolution=size, image_resolution=size)
        return out.convert("RGB").resize((size, size)) if np.asarray(out).any() else None
    keypoints = mediapipe_keypoints(square)
    return skeleton_image(keypoints, size, draw_skeleton) if keypoints is not None else None
