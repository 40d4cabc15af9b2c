"""Signed links to the customer-facing pages (``/c/...?k=<token>``): the functions live in
:mod:`omnibank.users.links` (low in the layers, so a domain may put a link in what it sends); the console's
pages import them from here."""

from __future__ import annotations

from omnibank.users.links import MAX_TOKEN as MAX_TOKEN
from omnibank.users.links import customer_link_token as customer_link_token
from omnibank.users.links import read_link_token as read_link_token

__all__ = ["MAX_TOKEN", "customer_link_token", "read_link_token"]
