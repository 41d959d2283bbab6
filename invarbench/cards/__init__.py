"""Model cards: the YAML files under ``model_cards/`` that register models."""

from invarbench.cards.catalog import CardRef, default_cards_dir, list_cards, load_card, resolve_card
from invarbench.cards.schema import ModelCard

__all__ = ["CardRef", "ModelCard", "default_cards_dir", "list_cards", "load_card", "resolve_card"]
