"""The ActionBench loader on the real benchmark, plain folders, and bad input."""

import json

import pytest
from PIL import Image

from actionbench.bench import load_action, load_benchmark
from actionbench.catalog import actions, subjects
from actionbench.errors import ActionBenchError


def test_catalog_has_the_papers_8_actions_and_23_subjects():
    assert list(actions()) == ["salute", "gesture", "cheer", "pray", "sit", "squat", "meditate", "handstand"]
    assert actions()["handstand"] == "performs a handstand"
    subs = subjects()
    assert len(subs) == 23 and subs[0].name == "A boy" and subs[-1].name == "A panda"
    assert sum(s.category == "animal" for s in subs) == 11
    assert subs[-1].prompt("<A>") == "A panda <A>"


def test_loads_the_real_actionbench(actionbench_root):
    bench = load_benchmark(actionbench_root)
    assert sorted(bench) == sorted(actions())
    for name, aset in bench.items():
        assert len(aset) == 10
        assert aset.phrase == actions()[name]
        assert all(e.template.count("{}") == 1 for e in aset.exemplars)
    hs = bench["handstand"].exemplars[0]
    assert hs.key == "01" and hs.template == "Young fit woman {} in studio"
    assert hs.prompt("<A>") == "Young fit woman <A> in studio"
    assert hs.caption.startswith("Young fit woman doing handstand")
    assert hs.image().mode == "RGB"


def make_folder(tmp_path, n=2, text=None):
    d = tmp_path / "wave"
    d.mkdir()
    for i in range(n):
        Image.new("RGB", (20, 30), (i * 50, 0, 0)).save(d / f"{i + 1:02d}.png")
    if text is not None:
        (d / "text.json").write_text(text if isinstance(text, str) else json.dumps(text))
    return d


def test_plain_folder_with_one_template(tmp_path):
    d = make_folder(tmp_path)
    aset = load_action(d, template="a person {} on a beach", phrase="waves")
    assert len(aset) == 2 and aset.phrase == "waves"
    assert aset.exemplars[1].prompt("<A>") == "a person <A> on a beach"
    assert aset.phrase is not None and aset.action_different(aset.exemplars[0]) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no images found"),
        (lambda p: make_folder(p), "no text.json"),
        (lambda p: make_folder(p, text="{not json"), "not valid JSON"),
        (lambda p: make_folder(p, text={"01.png": ["no placeholder"], "02.png": ["x {}"]}), "must contain '{}'"),
        (lambda p: make_folder(p, text={"01.png": ["a {}"]}), "no template for 02.png"),
        (lambda p: make_folder(p, text={"01.png": ["a {}"], "02.png": ["b {}"], "07.png": ["c {}"]}), "07.png"),
    ],
)
def test_bad_folders_get_one_line_errors(tmp_path, make, message):
    with pytest.raises(ActionBenchError, match=message.replace("{", r"\{").replace("}", r"\}")) as err:
        load_action(make(tmp_path))
    assert "\n" not in str(err.value)


def test_corrupt_image_is_named(tmp_path):
    d = make_folder(tmp_path, text={"01.png": ["a {}"], "02.png": ["b {}"]})
    (d / "02.png").write_bytes(b"not a png at all")
    with pytest.raises(ActionBenchError, match=r"02\.png: unreadable or corrupt image"):
        load_action(d)


def test_template_flag_must_hold_the_placeholder(tmp_path):
    with pytest.raises(ActionBenchError, match="--template"):
        load_action(make_folder(tmp_path), template="a person on a beach")


def test_action_different_folder_must_exist(tmp_path):
    with pytest.raises(ActionBenchError, match="action-different"):
        load_action(make_folder(tmp_path), template="a {}", action_different_dir=tmp_path / "nope")
