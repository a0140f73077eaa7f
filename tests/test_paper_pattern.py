"""evaluate/paper_pattern.py on a hand-made v3 report: pairing with the text prompt across
learning seeds, the three paired differences, and the markdown."""

import json

from evaluate.paper_pattern import main, pattern_rows, versus_reference


def _rec(hits, seeds, leaks):
    return {"hits": hits, "seeds": seeds, "leaks": leaks}


def _report():
    # the text prompt (seed 0 only): subject on every slot, action on 1 of 4, no leaks
    sd = _rec([[1, 1], [1, 0], [1, 0], [1, 0]], [0] * 4, [[0, 0, 0]] * 4)
    # a learner, seeds 0 and 1: action on every slot, subject lost on 2 of 8, leaks on 2 of 8
    # (one slot of seed 1 not counted for leaks)
    learner = _rec([[1, 1], [0, 1], [1, 1], [1, 1]] * 2, [0] * 4 + [1] * 4,
                   [[0, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 1], [None, None, None], [0, 0, 0]])
    other = _rec([[1, 1]] * 4, [1] * 4, [[0, 0, 0]] * 4)  # seed 1 only
    return {"results": {"salute": {"sd": sd, "adi": learner, "pplus": other}}}


def test_a_fixed_reference_pairs_with_every_learning_seed():
    r = versus_reference(_report(), "adi", n_boot=200)
    assert r["runs"] == 2
    assert r["action"]["n"] == 8 and r["action"]["diff"] == 0.75  # 8/8 vs 2/8 (sd's slots used twice)
    assert r["subject"]["diff"] == -0.25 and r["subject"]["method"] == 0.75
    assert r["context_leak"]["n"] == 7 and abs(r["context_leak"]["diff"] - 2 / 7) < 1e-9


def test_learners_pair_only_on_shared_seeds():
    r = versus_reference(_report(), "pplus", reference="adi", n_boot=200)
    assert r["action"]["n"] == 4 and r["subject"]["diff"] == 0.25  # seed 1 only: 4/4 vs 3/4
    assert r["context_leak"]["n"] == 3


def test_cli_writes_markdown_and_json(tmp_path):
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(_report()))
    main([str(path), "--n-boot", "100"])
    text = (tmp_path / "pattern.md").read_text()
    assert "| adi | 2 | 100.0% (+75.0" in text and "| sd |" not in text
    assert [r["method"] for r in json.loads((tmp_path / "pattern.json").read_text())] == ["adi", "pplus"]
    assert [r["method"] for r in pattern_rows(_report(), n_boot=50)] == ["adi", "pplus"]
