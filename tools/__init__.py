"""Maintenance scripts kept with the repository (not part of the installed package)."""
