"""Property-based run over the published OpenAPI document (schemathesis): whatever valid-looking input an
administrator sends, no answer is a 500, and every answer matches the documented status codes, content
type and schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from omnibank.api.ratelimit import TokenBucket
from omnibank.app import create_app
from omnibank.config import Settings
from tests.api.bank import Bank, build_bank
from tests.conftest import ON_POSTGRES

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


# The document is built from an app made at import time (building it touches no store); each example is
# sent to that app, pointed at the test's bank by swapping its state.
APP = create_app(Settings(home=Path(tempfile.gettempdir()) / "omnibank-fuzz-unused"))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture
def fuzz_bank(request: pytest.FixtureRequest, env, tmp_path: Path) -> Bank:
    # PostgreSQL fuzzes the writes (where a store refuses what another accepts: a NUL byte, an overflow); the
    # reads were fuzzed on SQLite, and their queries run on PostgreSQL in the API's own tests. Skipped here,
    # before the bank is built (most of an operation's time)
    if ON_POSTGRES and str(getattr(request.node, "operation_label", "")).startswith("GET "):
        pytest.skip("reads are fuzzed in the embedded pass")
    bank = build_bank(env.settings.model_copy(update={"api_login_per_minute": 1000}), tmp_path / "bank")
    bank.auth("admin")
    APP.state.settings = bank.settings
    APP.state.clock = bank.clock
    APP.state.rate_limiter = TokenBucket(100_000)
    return bank


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_bank: Bank) -> None:
    case.call_and_validate(headers=fuzz_bank.auth("admin"), checks=CHECKS)
