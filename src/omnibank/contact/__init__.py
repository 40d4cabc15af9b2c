"""Channels and the one contact policy every send goes through: consent, do-not-disturb, quiet hours, caps."""
