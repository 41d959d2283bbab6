"""Models: the architecture registry, the safe loaders and the wrapper every measurement uses."""

from invarbench.models.loading import load_model
from invarbench.models.wrapper import ModelWrapper

__all__ = ["ModelWrapper", "load_model"]
