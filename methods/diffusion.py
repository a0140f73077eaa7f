"""The denoising objective, as pure functions (tensors in, tensors out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image


def noisy_and_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    """z_t = sqrt(a_t) z_0 + sqrt(1-a_t) eps, and the UNet's target (eps, or v for v-prediction)."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unsupported prediction type {kind!r}")
    return noisy, target


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L = ||target - eps_theta||^2, averaged over each sample's elements -> (B,)."""
    return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size``, centre-crop a square, scale to [-1, 1] -> (3, size, size)."""
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).reshape(size, size, 3)
    return x.permute(2, 0, 1).float() / 127.5 - 1.0


@torch.no_grad()
def encode_images(vae, images: list[Image.Image], size: int, batch: int = 8) -> torch.Tensor:
    """VAE latents of images (posterior mean, times the VAE's scaling factor)."""
    out = []
    param = next(vae.parameters())
    for i in range(0, len(images), batch):
        x = torch.stack([image_to_tensor(im, size) for im in images[i : i + batch]]).to(param.device, param.dtype)
        out.append(vae.encode(x).latent_dist.mean.float() * vae.config.scaling_factor)
    return torch.cat(out)


def native_resolution(pipe) -> int:
    """The image size a pipeline was trained at (UNet sample size times the VAE factor)."""
    return int(pipe.unet.config.sample_size * pipe.vae_scale_factor)


def time_ids(size: int, batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """SDXL's six size/crop conditioning numbers for a ``size`` square image, (B, 6): original
    size, crop top-left, target size. (ours) Training uses (size, size, 0, 0, size, size), the
    numbers ``StableDiffusionXLPipeline`` conditions on when it generates at that size, rather
    than each photo's own size and crop offset, so an identifier is learned under the
    conditioning it is used with."""
    return torch.tensor([[size, size, 0, 0, size, size]], dtype=dtype, device=device).expand(batch, 6)


def predict(unet, noisy: torch.Tensor, t: torch.Tensor, states: torch.Tensor, pooled: torch.Tensor | None = None, size: int | None = None):
    """The UNet's prediction for text encodings ``states``; on SDXL also the pooled embedding and
    the time ids of a ``size`` image (``added_cond_kwargs``). Every training path calls this."""
    kwargs = {}
    if pooled is not None:
        if size is None:
            raise ValueError("SDXL's UNet needs the image size for its time ids")
        kwargs["added_cond_kwargs"] = {
            "text_embeds": pooled.to(unet.dtype),
            "time_ids": time_ids(size, noisy.shape[0], noisy.device, unet.dtype),
        }
    return unet(noisy.to(unet.dtype), t, states.to(unet.dtype), **kwargs).sample
