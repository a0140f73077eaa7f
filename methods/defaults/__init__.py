"""Each registered method's default settings as YAML, with the source of every value.

``methods/defaults/<name>.yaml`` mirrors the method's ``Config`` dataclass defaults
(the dataclass is what the code uses; ``tests/test_method_configs.py`` checks the two
agree). Copy one, edit it, and pass it with ``actionbench learn --config FILE.yaml``.
"""

from pathlib import Path

FOLDER = Path(__file__).parent


def defaults_file(method: str) -> Path:
    """The YAML defaults of a registered method (``"custom-diffusion"`` -> ``custom-diffusion.yaml``)."""
    return FOLDER / f"{method}.yaml"
