"""Shared vocabulary of Kosmoi Immune: value types, Arrow schemas, metrics, stable ids.

Every other package (``targets``, ``attackers``, ``sim``, ``evolve``) may import
from here; this package imports none of them.
"""
