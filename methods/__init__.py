"""The uniform method interface and the registry of methods.

>>> import methods
>>> learned = methods.learn(pipe, action_set, "adi", methods.get_method("adi").Config(steps=3000), out="a.safetensors")
>>> images = methods.generate(pipe, methods.LearnedAction.load("a.safetensors"), "A panda {}")
"""

from .base import Method, PromptEncoder
from .config import MethodConfig
from .generation import contact_sheet, fill_prompt, generate
from .learned import LearnedAction
from .registry import available, get_method, register
from .training import learn

_METHOD_MODULES = (
    "text_prompt", "controlnet", "dreambooth", "textual_inversion", "reversion", "custom_diffusion", "pplus", "adi",
)


def _import_methods():
    import importlib

    for name in _METHOD_MODULES:
        importlib.import_module(f"{__name__}.{name}")


_import_methods()
_load_all = True

__all__ = [
    "LearnedAction", "Method", "MethodConfig", "PromptEncoder", "available", "contact_sheet",
    "fill_prompt", "generate", "get_method", "learn", "register",
]
