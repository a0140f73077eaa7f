"""actionbench: benchmark and evaluation suite for action-customized text-to-image generation."""

__version__ = "0.1.0"
