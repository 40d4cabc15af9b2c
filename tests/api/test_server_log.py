"""What `omnibank serve` logs holds no phone or ID number: customers are searched by a POST body, a search
still sent in a URL is refused, and every log line has its query string redacted."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.bank import CUSTOMERS, PASSWORD, Bank
from tests.api.process import omnibank_serve

CA1 = next(r for r in CUSTOMERS if r["customer_id"] == "CA1")


def test_searches_by_phone_and_id_number_leave_no_number_in_the_server_log(
    bank: Bank, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    numbers = {"phone": CA1["phone"], "id_number": CA1["id_number"]}
    found, in_url = [], []
    with omnibank_serve(log) as base, httpx.Client(base_url=base, timeout=30) as http:
        login = http.post("/api/v1/auth/login", json={"username": "rm_a", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for field, number in numbers.items():
            # an RM searches by the number, in the body
            found.append(http.post("/api/v1/customers/search", json={field: number}, headers=headers))
            # a client still puts it in the URL (or in any other query parameter)
            in_url.append(http.get("/api/v1/customers", params={field: number}, headers=headers))
            http.get("/api/v1/customers", params={"limit": 5, "note": number}, headers=headers)
    text = log.read_text(encoding="utf-8")
    # then the log of every request (on by default) holds none of the numbers, nor a part of one
    assert "/api/v1/customers/search HTTP/1.1" in text and "GET /api/v1/customers?" in text
    for number in (*numbers.values(), CA1["phone"][3:], CA1["id_number"][6:14]):
        assert number not in text, f"{number} is in the server log"
    # the searches found the customer, masked; a search in the URL is refused, not answered
    for response, number in zip(found, numbers.values(), strict=True):
        assert response.status_code == 200, response.text
        assert [c["customer_id"] for c in response.json()["items"]] == ["CA1"] and number not in response.text
    for response in in_url:
        assert response.status_code == 422, response.text
        assert response.json()["details"][0]["type"] == "search_by_post"
