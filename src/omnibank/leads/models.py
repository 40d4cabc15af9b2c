"""Tables of this domain (filled in as the domain is built)."""

from __future__ import annotations
