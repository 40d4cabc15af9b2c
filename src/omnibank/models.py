"""Import every domain's tables so that the metadata is complete (Alembic, tests)."""

from __future__ import annotations


def import_all_models() -> None:
    import omnibank.api.models
    import omnibank.assistant.models
    import omnibank.audit.models
    import omnibank.benefits.models
    import omnibank.campaigns.models
    import omnibank.consent.models
    import omnibank.contact.models
    import omnibank.customers.models
    import omnibank.cx.models
    import omnibank.db.versions
    import omnibank.events.models
    import omnibank.invites.models
    import omnibank.journeys.models
    import omnibank.leads.models
    import omnibank.marketing.scores
    import omnibank.marketing.tables
    import omnibank.orgs.models
    import omnibank.segments.models
    import omnibank.service.models
    import omnibank.tags.models
    import omnibank.users.models
    import omnibank.worker.models  # noqa: F401
