"""Model cards: the YAML files under ``model_cards/`` that register models.

A card on its own: its schema, where it lives, its checksum, a new one. The checks that put a
card in context (its data set, architecture and model file) are :mod:`invarbench.card_checks`.
"""

from invarbench.cards.catalog import CardRef, default_cards_dir, load_card, resolve_card
from invarbench.cards.schema import ModelCard

__all__ = ["CardRef", "ModelCard", "default_cards_dir", "load_card", "resolve_card"]
