"""The "Stable Diffusion" row: nothing is learned, the action is written as text."""

from dataclasses import dataclass

from actionbench.errors import ActionBenchError

from .base import Method
from .config import MethodConfig
from .registry import register


@dataclass
class TextPromptConfig(MethodConfig):
    steps: int = 0
    phrase: str | None = None  # None: the paper's phrase for the action folder's name


@register
class TextPrompt(Method):
    name = "sd"
    summary = "no learning: the action phrase written in the prompt"
    Config = TextPromptConfig

    def fill(self) -> str:
        phrase = self.config.phrase or self.action_set.phrase
        if not phrase:
            raise ActionBenchError(
                f"{self.action_set.root}: no known phrase for action {self.action_set.name!r}; set `phrase` in the config"
            )
        return phrase
