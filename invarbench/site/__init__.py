"""The static leaderboard site (an I/O edge): rendered from the store with Jinja2 templates."""

from invarbench.site.build import build_site

__all__ = ["build_site"]
