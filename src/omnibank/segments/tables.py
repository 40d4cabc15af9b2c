"""The tags' tables as the segment engine reads them: which tags exist (an expression may name them), their
categories (the matrix) and who carries which.

Plain table constructs, not the tags domain's models: tags sit above segments (a tag is computed with the
segment engine), so segments must not import them (``make lint`` checks the layers). The tags domain owns
these tables and their migrations; a test checks that these columns exist there."""

from __future__ import annotations

from sqlalchemy import column, table

tag_definitions = table("tag_definitions", column("name"), column("category"))
customer_tags = table("customer_tags", column("customer_id"), column("tag"))

#: models' latest scores (the marketing domain writes them: :mod:`omnibank.marketing.scores`)
model_scores = table("model_scores", column("model"), column("customer_id"), column("score_ppm"))
