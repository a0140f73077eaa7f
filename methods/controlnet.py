"""ControlNet with OpenPose skeletons (Zhang et al., ICCV 2023): the paper's no-learning pose baseline.

Nothing is trained. ``learn`` takes each exemplar's pose (the benchmark's given keypoints,
``poses.json``, when it ships them; else a detector, :mod:`actionbench.pose_drawing`) and stores
the skeleton images, as PNG bytes, in the learned file, with the ControlNet to load (hub
id, local folder, or ``world``) and each pose's source in its metadata. Generation writes the action phrase into
the prompt, as the ``sd`` row does, and draws image i (seed s) with an OpenPose ControlNet
conditioned on exemplar skeleton ``s mod N``: a ``StableDiffusionControlNetPipeline``
built around the caller's pipeline components (nothing in ``pipe`` is changed).

Defaults: ADI-SPEC.md "ControlNet with OpenPose skeletons of the exemplars"; the ControlNet
for the base model (ours): ``lllyasviel/control_v11p_sd15_openpose`` for SD 1.x (token
width 768), ``thibaud/controlnet-sd21-openpose-diffusers`` for SD 2.x (1024),
``thibaud/controlnet-openpose-sdxl-1.0`` for SDXL (drawn with
``StableDiffusionXLControlNetPipeline``), and ``world`` (``actionbench/world/controlnet/``,
trained by ``actionbench world train-controlnet`` on the renders' exact skeletons) for the
ActionWorld model.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from actionbench.errors import ActionBenchError

from .base import Method, PromptEncoder
from .config import MethodConfig
from .learned import LearnedAction
from .registry import register
from .tokens import is_sdxl

OPENPOSE_CONTROLNETS = {
    768: "lllyasviel/control_v11p_sd15_openpose",
    1024: "thibaud/controlnet-sd21-openpose-diffusers",
    "sdxl": "thibaud/controlnet-openpose-sdxl-1.0",
}
DETECTORS = ("auto", "given", "openpose", "mediapipe")


@dataclass
class ControlNetConfig(MethodConfig):
    steps: int = 0  # nothing is learned
    controlnet: str | None = None  # hub id, local folder or "world"; None: the OpenPose ControlNet for the base model
    detector: str = "auto"  # auto: given keypoints (poses.json), else controlnet-aux OpenPose where available, else MediaPipe
    pose_resolution: int | None = None  # side of the stored skeleton images; None: the model's image size
    conditioning_scale: float = 1.0  # diffusers' default controlnet_conditioning_scale
    phrase: str | None = None  # the action as text; None: the paper's phrase for the action

    def __post_init__(self):
        super().__post_init__()
        if self.detector not in DETECTORS:
            raise ActionBenchError(f"unknown detector {self.detector!r}; one of {', '.join(DETECTORS)}")
        if self.pose_resolution is not None and self.pose_resolution < 8:
            raise ActionBenchError(f"pose_resolution must be >= 8 (got {self.pose_resolution})")


def png_tensor(image: Image.Image) -> torch.Tensor:
    """An image as its PNG file's bytes, a uint8 tensor (safetensors holds tensors only)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def tensor_png(t: torch.Tensor) -> Image.Image:
    return Image.open(io.BytesIO(t.numpy().tobytes())).convert("RGB")


def default_controlnet(pipe) -> str:
    from actionbench.models import WORLD_CONTROLNET_OF, is_world_pipeline, pipeline_name, world_version

    if is_world_pipeline(pipe):
        return "world"
    version = world_version(str(pipeline_name(pipe)))
    if version not in (None, "v2b"):
        return WORLD_CONTROLNET_OF[version]  # its world's ControlNet (a clear error at setup if it is not trained yet)
    width = "sdxl" if is_sdxl(pipe) else pipe.text_encoder.get_input_embeddings().weight.shape[1]
    if width not in OPENPOSE_CONTROLNETS:
        raise ActionBenchError(f"no default OpenPose ControlNet for token width {width}; set `controlnet` in the config")
    return OPENPOSE_CONTROLNETS[width]


def check_world_controlnet(pipe, folder: str) -> None:
    """Warn when the world ControlNet was trained beside another world model (its UNet's checksum differs)."""
    import json
    import warnings

    from actionbench.fingerprint import model_fingerprint

    info = Path(folder, "actionworld_controlnet.json")
    trained_on = (json.loads(info.read_text()).get("base_fingerprint") or {}) if info.exists() else {}
    here = model_fingerprint(pipe)["checksum"]
    if any(abs(a - b) > 1e-2 * max(abs(a), abs(b), 1e-6) for a, b in zip(trained_on.get("checksum", []), here)):
        warnings.warn(f"{folder} was trained beside another world model: retrain it with `actionbench world train-controlnet`",
                      stacklevel=2)


def load_controlnet(name: str, device, dtype):
    """A ``ControlNetModel`` from a local folder, the hub (cache only when offline), or ``world``."""
    from diffusers import ControlNetModel

    from actionbench.models import resolve_controlnet

    name = resolve_controlnet(name)
    local = os.path.isdir(name)
    try:
        model = ControlNetModel.from_pretrained(name, torch_dtype=dtype, local_files_only=local)
    except Exception as err:
        if local:
            raise ActionBenchError(f"'{name}' is not a loadable diffusers ControlNet folder: {err}") from err
        raise ActionBenchError(
            f"ControlNet '{name}' could not be loaded ({type(err).__name__}): not in the Hugging Face cache and not "
            f"downloadable from here. Run `huggingface-cli download {name} --local-dir DIR` elsewhere, then set "
            f"`controlnet: DIR` in the config (--config FILE.yaml)"
        ) from err
    return model.to(device)


def controlnet_pipeline(pipe, controlnet):
    """A ControlNet pipeline of the base pipeline's kind (SD or SDXL) around its components."""
    if is_sdxl(pipe):
        from diffusers import StableDiffusionXLControlNetPipeline

        return StableDiffusionXLControlNetPipeline(
            vae=pipe.vae, text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2, tokenizer=pipe.tokenizer,
            tokenizer_2=pipe.tokenizer_2, unet=pipe.unet, controlnet=controlnet, scheduler=pipe.scheduler,
            force_zeros_for_empty_prompt=pipe.config.get("force_zeros_for_empty_prompt", True), add_watermarker=False,
        )
    from diffusers import StableDiffusionControlNetPipeline

    return StableDiffusionControlNetPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
        controlnet=controlnet, scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


class PosePromptEncoder(PromptEncoder):
    """Plain text encoding; images are drawn by a ControlNet pipeline, one exemplar pose per seed."""

    def __init__(self, pipe, controlnet_pipe, poses: list[Image.Image], scale: float):
        super().__init__(pipe)
        self.controlnet_pipe = controlnet_pipe
        self.poses = poses
        self.scale = scale

    def generation_pipeline(self):
        return self.controlnet_pipe

    def pipeline_inputs(self, seeds: list[int]) -> dict:
        return {"image": [self.poses[s % len(self.poses)] for s in seeds], "controlnet_conditioning_scale": self.scale}


@register
class ControlNetPose(Method):
    name = "controlnet"
    summary = "no learning: an OpenPose ControlNet on the exemplars' skeletons (Zhang et al. 2023)"
    Config = ControlNetConfig

    def setup(self, work_dir) -> None:
        from actionbench.models import resolve_controlnet
        from actionbench.pose_drawing import given_pose_image, openpose_detector, pose_image

        cfg = self.config
        self.controlnet = cfg.controlnet or default_controlnet(self.pipe)
        from actionbench.models import WORLD_CONTROLNETS

        if self.controlnet in WORLD_CONTROLNETS:
            check_world_controlnet(self.pipe, resolve_controlnet(self.controlnet))  # missing: say how to train it, before any work
        size = cfg.pose_resolution or self.resolution
        exemplars = self.action_set.exemplars
        use_given = cfg.detector in ("auto", "given")
        if cfg.detector == "given" and any(e.keypoints is None for e in exemplars):
            missing = [e.key for e in exemplars if e.keypoints is None]
            raise ActionBenchError(f"{self.action_set.root}: detector 'given' needs poses.json keypoints for every exemplar (none for {', '.join(missing)})")
        need_detector = any(not (use_given and e.keypoints is not None) for e in exemplars)
        detector = openpose_detector() if need_detector and cfg.detector in ("auto", "openpose") else None
        if cfg.detector == "openpose" and detector is None:
            raise ActionBenchError("detector 'openpose' needs controlnet-aux (pip install controlnet-aux) and its weights")
        self.poses, self.sources = {}, {}
        for e in exemplars:
            if use_given and e.keypoints is not None:
                skeleton, source = given_pose_image(e.image(), list(e.keypoints), size), "given"
            else:
                skeleton = pose_image(e.image(), size, cfg.detector, detector)
                source = "openpose" if detector is not None else "mediapipe"
            if skeleton is not None:
                self.poses[e.key] = skeleton
                self.sources[e.key] = source
        if not self.poses:
            raise ActionBenchError(f"{self.action_set.root}: no person's pose was found in any exemplar")

    def fill(self) -> str:
        return self.config.phrase or self.action_set.phrase or ""

    def learned_tensors(self) -> dict[str, torch.Tensor]:
        return {f"pose.{key}": png_tensor(im) for key, im in self.poses.items()}

    def extra_metadata(self) -> dict:
        return {
            "controlnet": self.controlnet,
            "conditioning_scale": self.config.conditioning_scale,
            "poses": sorted(self.poses),
            "pose_sources": {k: self.sources[k] for k in sorted(self.poses)},  # given (poses.json), openpose or mediapipe
            "missing_poses": sorted(e.key for e in self.action_set.exemplars if e.key not in self.poses),
        }

    @classmethod
    def apply(cls, pipe, learned: LearnedAction) -> PromptEncoder:
        name = learned.extra["controlnet"]
        cached = getattr(pipe, "_actionbench_controlnet", None)  # generate() applies once per call: load once
        if cached is None or cached[0] != name:
            cached = (name, load_controlnet(name, pipe.unet.device, pipe.unet.dtype))
            pipe._actionbench_controlnet = cached
        runner = controlnet_pipeline(pipe, cached[1])
        runner.set_progress_bar_config(disable=True)
        poses = [tensor_png(learned.tensors[f"pose.{k}"]) for k in learned.extra["poses"]]
        return PosePromptEncoder(pipe, runner, poses, learned.extra["conditioning_scale"])
