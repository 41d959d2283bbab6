"""invarbench: a benchmark of excessive sensitivity and excessive invariance of image classifiers."""

__version__ = "0.1.0"
