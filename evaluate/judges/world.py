"""The ``world`` judge: the ActionWorld classifier, for runs on the ActionWorld model.

It is trained on renders of the ActionWorld (``actionbench.world.judge``) and names
the subject kind and the action of a 64x64 image. It is imported only when used, so the
rest of the suite works while the world model is absent.
"""

from __future__ import annotations

from actionbench.errors import ActionBenchError

from .base import Item, Judge, JudgeContext, Verdict, register_judge


def _world_judge_module():
    try:
        from actionbench.world import judge as world_judge
    except ImportError as err:
        raise ActionBenchError(f"the world judge is not available in this install ({err})") from None
    return world_judge


@register_judge
class WorldJudge(Judge):
    name = "world"
    sees = "ActionWorld renders: which of its subject kinds and which of its actions an image shows"
    blind_to = "anything outside the ActionWorld (real photos, SD images); subjects that are not ActionWorld kinds ('cannot tell')"

    def __init__(self, context: JudgeContext, version: str = "v2b", **options):
        """``version``: the world whose judge reads the images (``v2b``; ``v3``, set by the run
        config for a v3 model)."""
        super().__init__(context, **options)
        self._module = _world_judge_module()
        from actionbench.world.worlds import WORLDS, renderer

        if version not in WORLDS:
            raise ActionBenchError(f"world judge option version={version!r}: one of {', '.join(WORLDS)}")
        self.version = version
        try:
            self._net = self._module.load_judge(self._module.default_judge_dir(version))
        except Exception as err:
            raise ActionBenchError(f"the world judge's weights could not be loaded ({err}); train them with "
                                   f"`actionbench world train-judge --world {version}`") from None
        world = renderer(version)
        self._phrases = {world.subject_phrase(k).lower(): k for k in world.SUBJECTS}

    def _kind(self, subject: str) -> str | None:
        s = subject.lower().strip()
        return self._phrases.get(s) or (s if s in self._phrases.values() else None)

    def judge(self, images: list, items: list[Item]) -> list[Verdict]:
        results = self._module.judge_images(images, self._net)
        out = []
        for (subj, act, probs), item in zip(results, items):
            kind = self._kind(item.subject)
            out.append(Verdict(
                item.image_id, self.name,
                action_ok=act == item.action,
                subject_ok=None if kind is None else subj == kind,
                predicted_action=act, predicted_subject=subj,
                score=round(float(probs.get("action", {}).get(act, 0.0)), 4) if isinstance(probs, dict) else None,
            ))
        return out
