"""Bridges to other dataset formats (DeepMIMO v4)."""
