"""The reference models: two small classifiers trained by invarbench itself, shipped with the repository."""
