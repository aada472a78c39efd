"""Isoloir: protect the personal data a French political campaign collects."""

__version__ = "0.1.0"
