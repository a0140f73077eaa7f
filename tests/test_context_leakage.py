"""Context leakage: hand-computed cases (evaluate/context_leakage.py)."""

import pytest

from evaluate.context_leakage import Slot, leakage_rates, leaks, paired_leakage


def slot(judged_scene, judged_outfit, asked=("forest", "striped"), dominant=("city", "camo")):
    return Slot(asked[0], asked[1], judged_scene, judged_outfit, dominant[0], dominant[1])


def test_leaks_counts_the_dominant_context_only_when_another_was_asked():
    assert leaks(slot("forest", "striped")) == {"scene": 0, "outfit": 0, "context": 0}  # obeyed
    assert leaks(slot("city", "striped")) == {"scene": 1, "outfit": 0, "context": 1}
    assert leaks(slot("forest", "camo")) == {"scene": 0, "outfit": 1, "context": 1}
    assert leaks(slot("city", "camo")) == {"scene": 1, "outfit": 1, "context": 1}
    assert leaks(slot("gym", "dotted")) == {"scene": 0, "outfit": 0, "context": 0}  # wrong, but not the exemplars'
    # asked for the dominant scene itself: drawing it is obedience, not leakage
    assert leaks(slot("city", "striped", asked=("city", "striped"))) == {"scene": None, "outfit": 0, "context": 0}
    assert leaks(slot("city", "camo", asked=("city", "camo"))) == {"scene": None, "outfit": None, "context": None}
    assert leaks(slot(None, None)) == {"scene": 0, "outfit": 0, "context": 0}


def test_rates_and_intervals():
    slots = [slot("city", "striped"), slot("forest", "camo"), slot("forest", "striped"), slot("forest", "striped"),
             slot("city", "camo", asked=("city", "striped")), slot(None, "striped")]
    r = leakage_rates(slots, n_boot=500)
    assert r["scene"]["n"] == 5 and r["scene"]["rate"] == 20.0  # 1 of the 5 that asked for another scene
    assert r["outfit"]["n"] == 6 and r["outfit"]["rate"] == pytest.approx(100 * 2 / 6, abs=0.1)
    assert r["context"]["rate"] == 50.0  # slots 1, 2 and 5 (its outfit) of 6
    assert r["cannot_tell"] == 1
    assert r["context"]["low"] <= 50.0 <= r["context"]["high"]
    with pytest.raises(ValueError, match="cluster labels"):
        leakage_rates(slots, clusters=[0, 1])


def test_paired_difference_on_the_same_slots():
    a = [slot("city", "striped")] * 10 + [slot("forest", "striped")] * 10  # 50% leak
    b = [slot("forest", "striped")] * 20  # none
    r = paired_leakage(a, b, n_boot=500)
    assert r["diff"] == 50.0 and r["n"] == 20 and r["low"] > 0 and r["p"] <= 0.01
    same = paired_leakage(b, b, n_boot=200)
    assert same["diff"] == 0.0 and same["p"] == 1.0
    with pytest.raises(ValueError, match="not paired"):
        paired_leakage([slot("city", "camo", asked=("gym", "dotted"))], [slot("city", "camo")])
    with pytest.raises(ValueError, match="same image slots"):
        paired_leakage(a, b[:3])
    with pytest.raises(ValueError, match="leak kind"):
        paired_leakage(a, b, kind="hair")
