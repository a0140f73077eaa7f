"""Graded appearance leakage: the judge's human mass on animal slots, and its table."""

import json

import pytest

from actionbench.world import render as R
from evaluate.leakage import human_mass, leakage_table, main, run_folders, slot_kinds


def test_human_mass_sums_only_the_human_kinds():
    probs = {"man": 0.1, "woman": 0.05, "boy": 0.0, "old_man": 0.05, "panda": 0.7, "fox": 0.1}
    assert human_mass(probs) == pytest.approx(0.2)
    assert human_mass(probs, humans=["panda"]) == pytest.approx(0.7)


def test_slot_kinds_follow_the_demo_order_and_refuse_a_wrong_count():
    kinds = slot_kinds(3 * len(R.SUBJECTS), 3)
    assert kinds[:3] == [R.SUBJECTS[0]] * 3 and kinds[-1] == R.SUBJECTS[-1]
    with pytest.raises(ValueError, match="per subject"):
        slot_kinds(10, 3)


def test_the_judge_finds_rendered_animals_not_human_and_rendered_people_human():
    from actionbench.world.judge import judge_images

    animals = [R.render(k, "salute", "park", seed) for k in R.ANIMALS for seed in (1, 2)]
    people = [R.render(k, "salute", "park", seed) for k in R.HUMANS for seed in (1, 2)]
    va, vp = judge_images(animals), judge_images(people)
    assert max(human_mass(v[2]["subject"]) for v in va) < 0.5
    assert min(human_mass(v[2]["subject"]) for v in vp) > 0.5


def test_leakage_table_pairs_runs_with_the_reference_and_skips_unpaired_ones():
    masses = {"salute": {"adi": {"0": [0.0, 0.0, 0.1, 0.1]}, "tok": {"0": [0.5, 0.5, 0.6, 0.6]}},
              "sit": {"tok": {"0": [0.2, 0.2, 0.2, 0.2]}, "lone": {"0": [0.3] * 4}}}
    rows = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ") for line in leakage_table(masses, "adi", n_boot=200).splitlines()[2:]}
    assert rows["adi"][1].startswith("0.050") and rows["adi"][3] == "-"
    assert rows["tok"][1].startswith("0.375") and rows["tok"][2] == "8"
    assert rows["tok"][3].startswith("+0.500")  # paired on salute only: sit has no adi run
    assert rows["lone"][3] == "-"


def test_run_folders_read_specs_back_from_their_tags_in_parts(tmp_path):
    for part, action, tag in (("a", "salute", "adi_mask-none_lr-0.02"), ("b", "sit", "sd"), ("b", "sit", "unknown")):
        (tmp_path / "parts" / part / "images" / action / tag / "seed1").mkdir(parents=True)
    runs = [(a, m, s) for a, m, s, _ in run_folders(tmp_path, ["sd", "adi:mask=none:lr=0.02"])]
    assert runs == [("salute", "adi:mask=none:lr=0.02", 1), ("sit", "sd", 1)]


def test_main_explains_a_folder_without_a_report_or_images(tmp_path):
    with pytest.raises(SystemExit, match="demo.json is missing"):
        main(["--table", str(tmp_path)])
    (tmp_path / "demo.json").write_text(json.dumps({"settings": {"n": 1}, "results": {"sit": {"sd": {}}}}))
    with pytest.raises(SystemExit, match="no run images"):
        main(["--table", str(tmp_path)])


def test_main_refills_the_docs_leakage_section_from_the_run_images(tmp_path):
    from evaluate.leakage import BEGIN, END

    for method in ("adi", "sd"):
        folder = tmp_path / "images" / "sit" / method / "seed0"
        folder.mkdir(parents=True)
        for k, kind in enumerate(R.SUBJECTS):  # n = 1: one image per subject, in the world's order
            R.render(kind, "sit", "park", k).save(folder / f"{k:03d}.png")
    (tmp_path / "demo.json").write_text(json.dumps({"settings": {"n": 1}, "results": {"sit": {"adi": {}, "sd": {}}}}))
    docs = tmp_path / "doc.md"
    docs.write_text(f"before\n{BEGIN}\nstale table\n{END}\nafter\n")
    main(["--table", str(tmp_path), "--docs", str(docs)])
    text = docs.read_text()
    assert "stale table" not in text and text.startswith("before\n") and text.endswith(f"{END}\nafter\n")
    assert "2 runs, every action and learning seed" in text
    n_animals = str(len(R.ANIMALS))
    assert f"| {n_animals} | - | - |" in text and "| sd | " in text
    assert json.loads((tmp_path / "leakage.json").read_text())["sit"]["sd"]["0"] == pytest.approx([0.0] * len(R.ANIMALS), abs=0.5)


def test_a_v3_report_is_read_by_the_v3_judge_and_v3_subjects(tmp_path, monkeypatch):
    import actionbench.world.judge as J
    from actionbench.world import render_v3 as V
    from evaluate.leakage import measure

    folder = tmp_path / "images" / "salute" / "sd" / "seed0"
    folder.mkdir(parents=True)
    for i, s in enumerate(V.SUBJECTS):
        V.render(s, "salute", "striped/park", i).save(folder / f"{i:03d}.png")
    used = []
    real = J.load_judge
    monkeypatch.setattr(J, "load_judge", lambda path=None: used.append(path) or real(path))
    report = {"settings": {"n": 1, "world": "v3"}, "results": {"salute": {"sd": {}}}}
    masses = measure(tmp_path, report)["salute"]["sd"]["0"]
    assert used == [J.JUDGE_V3_DIR] and len(masses) == len(V.ANIMALS) and max(masses) < 0.1
    measure(tmp_path, {"settings": {"n": 1}, "results": {"salute": {"sd": {}}}})  # a report from before v3: v2b's judge
    assert used[-1] == J.JUDGE_DIR
