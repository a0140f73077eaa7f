"""ADI on tiny pipelines: routing, frozen weights, fused vs naive gradients, determinism, resume."""

import pytest
import torch
from conftest import small_action, tiny_pipe

import methods
from actionbench.bench import load_action
from methods.layerwise import cross_attention_layers
from methods.training import checkpoint_path


def adi_config(**kw):
    base = dict(steps=4, checkpoint_every=2, action_different_steps=0)
    base.update(kw)
    return methods.get_method("adi").Config(**base)


def setup_adi(pipe, tmp_path, **kw):
    m = methods.get_method("adi")(pipe, load_action(small_action(tmp_path)), adi_config(**kw))
    m.setup(tmp_path / "cache")
    return m


@pytest.mark.parametrize("flavor", ["sd2", "sd1"])
def test_sixteen_layers_in_paper_order(flavor):
    names = cross_attention_layers(tiny_pipe(flavor).unet)
    assert len(names) == 16
    groups = [n.split(".")[0] for n in names]
    assert groups == ["down_blocks"] * 6 + ["mid_block"] + ["up_blocks"] * 9


@pytest.mark.parametrize("flavor", ["sd2", "sd1"])
def test_changing_layer_l_token_changes_only_layer_l_key_value_input(tmp_path, flavor):
    pipe = tiny_pipe(flavor)
    m = setup_adi(pipe, tmp_path)
    names = [n.rsplit(".processor", 1)[0] for n in cross_attention_layers(pipe.unet)]
    modules = dict(pipe.unet.named_modules())
    seen = {}
    hooks = [
        modules[n].to_k.register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, inp[0].detach().clone()))
        for n in names
    ]

    def kv_inputs(vectors):
        seen.clear()
        with torch.no_grad():
            noise = torch.zeros(1, 4, 16, 16)
            states = m.encode(m.ids[:1], vectors[None])
            pipe.unet(noise, torch.tensor([10]), states)
        return dict(seen)

    base = kv_inputs(m.vectors.detach())
    for layer in (0, 6, 15):
        changed = m.vectors.detach().clone()
        changed[layer] += 1.0
        after = kv_inputs(changed)
        differs = [not torch.equal(base[n], after[n]) for n in names]
        assert differs == [i == layer for i in range(16)], (layer, differs)
    for h in hooks:
        h.remove()


def test_model_weights_stay_bit_identical(tmp_path):
    pipe = tiny_pipe("sd2")
    before = {f"{name}.{k}": v.clone() for name in ("unet", "text_encoder", "vae") for k, v in getattr(pipe, name).state_dict().items()}
    learned = methods.learn(pipe, load_action(small_action(tmp_path)), "adi", adi_config(steps=3), progress=False)
    after = {f"{name}.{k}": v for name in ("unet", "text_encoder", "vae") for k, v in getattr(pipe, name).state_dict().items()}
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not p.requires_grad for p in pipe.unet.parameters())
    v = learned.tensors["<A>"]
    assert v.shape == (16, 32) and not torch.equal(v[0], v[1])  # layers learned apart


@pytest.mark.parametrize("flavor, same_noise", [("sd2", True), ("sd2", False), ("sd1", True)])
def test_fused_gradients_equal_the_naive_three_pass_reference(tmp_path, flavor, same_noise):
    m = setup_adi(tiny_pipe(flavor), tmp_path, batch_size=2, same_noise=same_noise)
    gen = torch.Generator().manual_seed(3)
    anchor, latents = m.sample_triples(gen)
    noise, t = m.triple_noise(gen, latents)
    g_fused, l_fused = m.triple_gradients(m.ids[anchor], latents, noise, t)
    g_naive, l_naive = m.triple_gradients_naive(m.ids[anchor], latents, noise, t)
    assert g_fused.shape == (2, 3, 16, 32)
    torch.testing.assert_close(l_fused, l_naive, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_fused, g_naive, rtol=1e-4, atol=1e-7)
    assert g_fused.abs().sum() > 0
    assert not torch.allclose(g_fused[:, 0], g_fused[:, 2])  # the three gradients differ


def test_fused_and_naive_training_end_alike(tmp_path):
    a = methods.learn(tiny_pipe(), load_action(small_action(tmp_path / "a")), "adi", adi_config(fused=True), progress=False)
    b = methods.learn(tiny_pipe(), load_action(small_action(tmp_path / "b")), "adi", adi_config(fused=False), progress=False)
    torch.testing.assert_close(a.tensors["<A>"], b.tensors["<A>"], rtol=1e-4, atol=1e-6)


def test_same_seed_gives_bit_identical_identifiers_and_another_seed_does_not(tmp_path):
    action = load_action(small_action(tmp_path))
    a = methods.learn(tiny_pipe(), action, "adi", adi_config(), progress=False)
    b = methods.learn(tiny_pipe(), action, "adi", adi_config(), progress=False)
    c = methods.learn(tiny_pipe(), action, "adi", adi_config(seed=1), progress=False)
    assert torch.equal(a.tensors["<A>"], b.tensors["<A>"])
    assert not torch.equal(a.tensors["<A>"], c.tensors["<A>"])


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(tmp_path):
    action = load_action(small_action(tmp_path))
    cfg = adi_config(steps=6, checkpoint_every=2)
    full = methods.learn(tiny_pipe(), action, "adi", cfg, out=tmp_path / "full.safetensors", progress=False)
    out = tmp_path / "resumed.safetensors"
    methods.learn(tiny_pipe(), action, "adi", cfg, out=out, progress=False, stop_after=3)  # "killed" after step 3
    assert checkpoint_path(out).exists() and not out.exists()  # checkpoint at step 2, nothing half-written
    resumed = methods.learn(tiny_pipe(), action, "adi", cfg, out=out, resume=True, progress=False)
    assert torch.equal(full.tensors["<A>"], resumed.tensors["<A>"])
    assert out.exists() and not checkpoint_path(out).exists()


def test_resume_refuses_a_checkpoint_with_other_settings(tmp_path):
    from actionbench.errors import ActionBenchError

    action = load_action(small_action(tmp_path))
    out = tmp_path / "x.safetensors"
    methods.learn(tiny_pipe(), action, "adi", adi_config(steps=4), out=out, progress=False, stop_after=2)
    with pytest.raises(ActionBenchError, match="beta"):
        methods.learn(tiny_pipe(), action, "adi", adi_config(steps=4, beta=0.3), out=out, resume=True, progress=False)


def test_masked_update_only_touches_kept_channels(tmp_path):
    m = setup_adi(tiny_pipe(), tmp_path)
    gen = torch.Generator().manual_seed(0)
    m.training_step(gen)
    kept = m.vectors.grad != 0
    frac = kept.float().mean().item()
    assert 0.05 < frac < 0.6  # intersection of two 40%-kept masks


def test_action_different_images_are_generated_cached_and_reused(tmp_path):
    pipe = tiny_pipe()
    action = load_action(small_action(tmp_path, n=2, with_different=False))
    cfg = adi_config(steps=1, action_different_steps=1, action_different_sample_steps=2, action_different_phrases=["stands", "waves"])
    methods.learn(pipe, action, "adi", cfg, work_dir=tmp_path / "cache", progress=False)
    made = sorted((tmp_path / "cache" / "action_different").glob("*/*/*.png"))
    assert [p.name for p in made] == ["stands.png", "waves.png"] * 2
    stamps = [p.stat().st_mtime_ns for p in made]
    methods.learn(pipe, action, "adi", cfg, work_dir=tmp_path / "cache", progress=False)
    assert [p.stat().st_mtime_ns for p in made] == stamps  # reused, not regenerated


def _one_step(m, optimizer, seed):
    logs = m.training_step(torch.Generator().manual_seed(seed))
    m.optimizer_step(optimizer)
    optimizer.zero_grad(set_to_none=True)
    return logs


@pytest.mark.parametrize("mask", ["adi", "random"])
def test_discarded_update_leaves_masked_channels_bitwise_unchanged(tmp_path, mask):
    """``masked_update: discarded``: a channel the step's mask dropped keeps its value and both
    AdamW moments bit for bit (weight decay and momentum do not reach it); kept ones move."""
    m = setup_adi(tiny_pipe("sd2"), tmp_path, mask=mask, masked_update="discarded", lr=1e-2, weight_decay=0.1)
    optimizer = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    _one_step(m, optimizer, 0)  # a first step fills the moments, so the second one has something to keep
    state = optimizer.state[m.vectors]
    value, avg, sq = (x.detach().clone() for x in (m.vectors, state["exp_avg"], state["exp_avg_sq"]))
    _one_step(m, optimizer, 1)
    dropped, kept = ~m.step_mask, m.step_mask
    assert dropped.any() and kept.any()
    for before, after in ((value, m.vectors.detach()), (avg, state["exp_avg"]), (sq, state["exp_avg_sq"])):
        assert torch.equal(before[dropped], after[dropped])
    assert not torch.equal(value[kept], m.vectors.detach()[kept])


def test_zero_gradient_update_moves_masked_channels(tmp_path):
    """The default reading (zero gradient, plain AdamW): momentum and weight decay move masked channels."""
    m = setup_adi(tiny_pipe("sd2"), tmp_path, mask="random", lr=1e-2, weight_decay=0.1)
    optimizer = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    _one_step(m, optimizer, 0)
    value = m.vectors.detach().clone()
    _one_step(m, optimizer, 1)
    dropped = ~m.step_mask
    assert not torch.equal(value[dropped], m.vectors.detach()[dropped])


def test_masked_update_is_checked():
    with pytest.raises(Exception, match="masked_update"):
        adi_config(masked_update="sometimes")
