"""Omnibank: a customer-operations platform for retail banks."""

__version__ = "0.1.0"
