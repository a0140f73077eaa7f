"""The denoising objective's pure functions, the offline CLIP tokenizer, token splicing."""

import torch
from conftest import tiny_pipe
from diffusers import DDIMScheduler
from PIL import Image

from actionbench.tokenizer import clip_tokenizer
from methods.diffusion import image_to_tensor, noisy_and_target, per_sample_mse
from methods.tokens import add_placeholder, encode, tokenize


def test_targets_for_epsilon_and_v_prediction():
    x0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([10, 900])
    s = DDIMScheduler(prediction_type="epsilon")
    noisy, target = noisy_and_target(s, x0, eps, t)
    assert torch.equal(target, eps)
    a = s.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(noisy, a.sqrt() * x0 + (1 - a).sqrt() * eps)
    _, v = noisy_and_target(DDIMScheduler(prediction_type="v_prediction"), x0, eps, t)
    torch.testing.assert_close(v, a.sqrt() * eps - (1 - a).sqrt() * x0)


def test_per_sample_mse():
    pred, target = torch.zeros(2, 3), torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 3.0]])
    assert per_sample_mse(pred, target).tolist() == [1.0, 3.0]


def test_image_to_tensor_centre_crops_and_scales():
    im = Image.new("RGB", (60, 30), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 8, 30))  # a blue strip on the left, cropped away
    x = image_to_tensor(im, 16)
    assert x.shape == (3, 16, 16)
    assert torch.allclose(x[0], torch.ones(16, 16)) and torch.allclose(x[2], -torch.ones(16, 16))


def test_real_clip_vocabulary():
    tok = clip_tokenizer()
    assert len(tok) == 49408
    # ids of the public openai/clip-vit-large-patch14 tokenizer
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert clip_tokenizer("!")("hi", padding="max_length", max_length=5).input_ids[-1] == 0


def test_placeholder_splicing_changes_only_what_follows_it():
    pipe = tiny_pipe()
    tid = add_placeholder(pipe.tokenizer, "<A>")
    assert tid == 49408 and add_placeholder(pipe.tokenizer, "<A>") == tid  # idempotent
    ids = tokenize(pipe.tokenizer, ["a panda <A> in a park"])
    pos = int((ids[0] == tid).nonzero())
    v1, v2 = torch.zeros(1, 32), torch.ones(1, 32)
    with torch.no_grad():
        y1, y2 = encode(pipe.text_encoder, ids, tid, v1), encode(pipe.text_encoder, ids, tid, v2)
    same = (y1 == y2).all(-1)[0]
    # causal text encoder: positions before the token are untouched, from it on they change
    assert same[:pos].all() and not same[pos:].any()
    # the embedding matrix was not resized or written
    assert pipe.text_encoder.get_input_embeddings().weight.shape[0] == 49408
