"""Fidelity on v3 (issue #23 item 5): v3 prompts over all 48 contexts, read by the v3 judge,
which also scores the scene and the clothing asked for; v2b's prompts are as before."""

from dataclasses import replace

import pytest

from actionbench.world import fidelity as F
from actionbench.world import render as R
from actionbench.world import render_v3 as V

ITEMS = [("panda", "handstand", "striped/park", 1), ("man", "wave", "camo/library", 2),
         ("fox", "sit", "dotted/snow", 3), ("woman", "salute", "white/gym", 4), ("dog", "jump", "zigzag/night", 5),
         ("boy", "walk", "checked/beach", 6)]


def test_v3_prompts_name_only_named_actions_and_cycle_all_contexts():
    rows = F.fidelity_prompts(V.NAMED, n=4, world="v3")
    assert len(rows) == len(V.SUBJECTS) * len(V.NAMED) * 4
    assert {r[3] for r in rows} == set(V.CONTEXTS)
    for s, a, prompt, c in rows:
        assert prompt == V.caption(s, a, c, name_action=True) and V.action_phrase(a) in prompt
    un = F.fidelity_prompts(V.UNNAMED, n=1, world="v3")
    assert all(V.action_phrase(a) in p for _, a, p, _ in un)  # text asks for the unnamed actions by their phrase
    free = F.action_free_prompts(2, world="v3")
    assert len(free) == 2 * len(V.SUBJECTS) and not any(V.action_phrase(a) in p for p in free for a in V.ACTIONS)
    # v2b's prompts are the archived reports' (3-tuples, contexts by row)
    old = F.fidelity_prompts(R.NAMED, n=2)
    assert old[1] == (R.SUBJECTS[0], R.NAMED[0], R.caption(R.SUBJECTS[0], R.NAMED[0], R.CONTEXTS[1], name_action=True))


def test_score_reads_scene_and_clothing_with_the_v3_judge():
    from actionbench.world.judge import JUDGE_V3_DIR, load_judge

    judge = load_judge(JUDGE_V3_DIR)
    ims = [V.render(*it) for it in ITEMS]
    good = F.score([(s, a, "", c) for s, a, c, _ in ITEMS], ims, judge)
    assert good["scene_acc"] == 1.0 and good["clothing_acc"] >= 5 / 6 and good["subject_acc"] >= 5 / 6
    shifted = [ITEMS[(i + 1) % len(ITEMS)][2] for i in range(len(ITEMS))]  # every row asks for another context
    bad = F.score([(s, a, "", c) for (s, a, _, _), c in zip(ITEMS, shifted)], ims, judge)
    assert bad["scene_acc"] <= 1 / 6 and bad["clothing_acc"] <= 1 / 6
    assert "scene_acc" not in F.score([(s, a, "") for s, a, _, _ in ITEMS], ims, judge)  # no context asked: none scored


@pytest.mark.slow
def test_measure_fidelity_v3_on_a_tiny_model():
    from actionbench.models import build_pipeline
    from actionbench.world.train import world_spec

    spec = replace(world_spec("v3"), unet_channels=(8, 8, 16, 16), head_dim=8, norm_groups=4, vae_channels=(8, 8, 8),
                   text_width=32, text_heads=2, text_ffn=32)
    pipe = build_pipeline(spec, seed=0)
    rep = F.measure_fidelity(pipe=pipe, model="tiny", n=1, steps=2, world="v3", log=lambda s: None)
    assert rep["world"] == "v3" and rep["named"]["n"] == len(V.SUBJECTS) * len(V.NAMED)
    assert 0 <= rep["named"]["scene_acc"] <= 1 and 0 <= rep["named"]["clothing_acc"] <= 1
    assert set(rep["unnamed"]["per_action"]) == set(V.UNNAMED)
    assert set(rep["judge"]["renders"]) == {"subject", "action", "scene", "outfit"}
