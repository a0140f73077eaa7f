"""The ``pose`` judge: which ActionBench action a person's body pose is closest to.

MediaPipe Pose (``mediapipe==0.10.21`` ships the "full" landmark model inside its wheel;
later versions download models at run time, which fails offline) finds 33 body
landmarks. A pose is reduced to 15 of them (nose, shoulders, elbows, wrists, index
fingers, hips, knees, ankles) in pixel units, centred on the mid-hip and scaled by the
torso length (mid-shoulder to mid-hip), so neither the image size, the person's size nor
where they stand matters; up stays up (a handstand is not a standing pose turned over).
Distance between two poses is the mean landmark distance, minimised over mirroring (a
left-hand salute is a salute). A generated image gets the action of its nearest
exemplar among the exemplars of *all* actions (1-nearest neighbour).

Validated by leave-one-out on the 80 real ActionBench photos (``actionbench judge
validate``; docs/evaluation.md has the figures).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from actionbench.errors import ActionBenchError

from .base import Item, Judge, JudgeContext, Verdict, register_judge

# MediaPipe landmark indices (BlazePose topology).
BODY = (0, 11, 12, 13, 14, 15, 16, 19, 20, 23, 24, 25, 26, 27, 28)
_LEFT = (1, 2, 3, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
_RIGHT = (4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32)
FLIP = list(range(33))
for _l, _r in zip(_LEFT, _RIGHT):
    FLIP[_l], FLIP[_r] = _r, _l
# Within the 15-landmark body vector: where each landmark goes when mirrored.
BODY_FLIP = [BODY.index(FLIP[i]) for i in BODY]


def _mediapipe_pose():
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
    try:
        import mediapipe as mp
    except ImportError:
        raise ActionBenchError(
            "the pose judge needs MediaPipe: pip install 'mediapipe==0.10.21' (or the project's [pose] extra)"
        ) from None
    return mp.solutions.pose


class PoseDetector:
    """MediaPipe Pose on still images, model complexity 1 (the model the wheel ships)."""

    def __init__(self, min_confidence: float = 0.3):
        pose = _mediapipe_pose()
        self._pose = pose.Pose(static_image_mode=True, model_complexity=1, min_detection_confidence=min_confidence)

    def landmarks(self, image) -> np.ndarray | None:
        """(33, 2) landmark positions in pixels, or None when no person is found."""
        rgb = np.asarray(image.convert("RGB"))
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        h, w = rgb.shape[:2]
        xy = np.array([[lm.x, lm.y] for lm in result.pose_landmarks.landmark], dtype=np.float64)
        return xy * [w, h]

    def close(self) -> None:
        self._pose.close()


def normalise(landmarks: np.ndarray) -> np.ndarray:
    """(33, 2) pixel landmarks -> (15, 2) body pose centred on the mid-hip, torso length 1."""
    hip = (landmarks[23] + landmarks[24]) / 2
    shoulder = (landmarks[11] + landmarks[12]) / 2
    scale = max(float(np.linalg.norm(shoulder - hip)), 1e-6)
    return (landmarks[list(BODY)] - hip) / scale


def mirror(pose: np.ndarray) -> np.ndarray:
    """The pose seen in a mirror: x negated, left and right landmarks swapped."""
    out = pose[BODY_FLIP].copy()
    out[:, 0] *= -1
    return out


def pose_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean landmark distance, the smaller of ``b`` as is and ``b`` mirrored."""
    direct = np.linalg.norm(a - b, axis=1).mean()
    mirrored = np.linalg.norm(a - mirror(b), axis=1).mean()
    return float(min(direct, mirrored))


@dataclass(frozen=True)
class Reference:
    action: str
    key: str  # "handstand/03"
    pose: np.ndarray


def nearest(pose: np.ndarray, references: list[Reference], exclude: str | None = None) -> tuple[Reference, float]:
    """The reference pose nearest to ``pose`` (skipping the one keyed ``exclude``)."""
    best, best_d = None, float("inf")
    for ref in references:
        if ref.key == exclude:
            continue
        d = pose_distance(pose, ref.pose)
        if d < best_d:
            best, best_d = ref, d
    if best is None:
        raise ActionBenchError("the pose judge has no reference poses (no person found in any exemplar)")
    return best, best_d


def reference_poses(action_sets: dict, detector: PoseDetector) -> tuple[list[Reference], list[str]]:
    """Poses of every exemplar of every action; also the keys of exemplars with no person."""
    refs, missing = [], []
    for name, action_set in sorted(action_sets.items()):
        for ex in action_set.exemplars:
            key = f"{name}/{ex.key}"
            lm = detector.landmarks(ex.image())
            if lm is None:
                missing.append(key)
            else:
                refs.append(Reference(name, key, normalise(lm)))
    return refs, missing


@register_judge
class PoseJudge(Judge):
    name = "pose"
    sees = ("the body pose of one person (the most prominent): arms, legs, torso and head position, "
            "up to mirroring, against the exemplars of all actions")
    blind_to = ("the subject (always 'cannot tell'); animals and other non-human bodies (usually 'no person "
                "found', sometimes a forced human reading); hands and fingers beyond the index fingertips; "
                "context (a chair, a mat); several people")

    def __init__(self, context: JudgeContext, **options):
        super().__init__(context, **options)
        if not context.action_sets:
            raise ActionBenchError("the pose judge needs the exemplars of the benchmark's actions")
        self.detector = PoseDetector()
        self.references, self.missing = reference_poses(context.action_sets, self.detector)

    def judge(self, images: list, items: list[Item]) -> list[Verdict]:
        out = []
        for image, item in zip(images, items):
            lm = self.detector.landmarks(image)
            if lm is None:
                out.append(Verdict(item.image_id, self.name, None, None, note="no person found"))
                continue
            ref, d = nearest(normalise(lm), self.references)
            out.append(Verdict(item.image_id, self.name, ref.action == item.action, None,
                               predicted_action=ref.action, score=round(d, 4), note=f"nearest {ref.key}"))
        return out


@dataclass
class LeaveOneOut:
    """Leave-one-out accuracy of the pose judge on real exemplars."""

    rows: list[dict]  # key, action, predicted (None: no person found), nearest, distance

    @property
    def accuracy(self) -> float:
        return sum(r["predicted"] == r["action"] for r in self.rows) / len(self.rows)

    def per_action(self) -> dict[str, tuple[int, int]]:
        right, total = Counter(), Counter()
        for r in self.rows:
            total[r["action"]] += 1
            right[r["action"]] += r["predicted"] == r["action"]
        return {a: (right[a], total[a]) for a in sorted(total)}

    def confusion(self):
        """pandas DataFrame: true action (rows) x predicted action (columns, plus 'no person')."""
        import pandas as pd

        actions = sorted({r["action"] for r in self.rows})
        cols = actions + ["no person"]
        table = pd.DataFrame(0, index=pd.Index(actions, name="true \\ predicted"), columns=cols)
        for r in self.rows:
            table.loc[r["action"], r["predicted"] or "no person"] += 1
        if not table["no person"].any():
            table = table.drop(columns="no person")
        return table


def leave_one_out(action_sets: dict) -> LeaveOneOut:
    """Classify each exemplar by its nearest neighbour among all the others."""
    detector = PoseDetector()
    try:
        refs, missing = reference_poses(action_sets, detector)
    finally:
        detector.close()
    rows = []
    for ref in refs:
        nb, d = nearest(ref.pose, refs, exclude=ref.key)
        rows.append({"key": ref.key, "action": ref.action, "predicted": nb.action, "nearest": nb.key, "distance": round(d, 4)})
    for key in missing:
        rows.append({"key": key, "action": key.split("/")[0], "predicted": None, "nearest": None, "distance": None})
    rows.sort(key=lambda r: r["key"])
    return LeaveOneOut(rows)
