"""Structured logs: JSON lines with trace and correlation ids, and no personal data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from service.logs import JsonFormatter, configure_logging, logging_config, redact

PHONE = "+86 138 1234 5678"
EMAIL = "li.na.private@example.com"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above during the test, as our JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_requests_are_logged_as_json_lines_with_trace_and_correlation_ids(
        client: Any, container: Any, token: Any, log_lines: io.StringIO) -> None:
    headers = {**token("sun", "customer_service"), "X-Correlation-ID": "corr-4711"}
    r = client.post("/customers", headers=headers,
                    json={"department": "ops", "kind": "company", "name": "Logged Ltd",
                          "credit_code": "91110000MA01LOG001"})
    assert r.status_code == 201, r.text
    assert r.headers["X-Correlation-ID"] == "corr-4711"
    lines = parsed(log_lines)
    access = [line for line in lines if line["logger"] == "opsledger.access"]
    [line] = [a for a in access if a["route"] == "/customers"]
    assert line["method"] == "POST" and line["status"] == 201
    assert line["correlation_id"] == "corr-4711"
    assert len(line["trace_id"]) == 32 and int(line["trace_id"], 16)
    assert line["level"] == "INFO" and line["time"].endswith("Z")
    assert isinstance(line["duration_ms"], float)
    # The event carries the same correlation id and trace id as the log line.
    [envelope] = container.runner.source(r.json()["position"] - 2, 2)[-1:]
    assert envelope.meta["correlation_id"] == "corr-4711"
    assert envelope.meta["trace_id"] == line["trace_id"]


def test_a_request_without_a_correlation_id_gets_one_that_logs_and_events_share(
        client: Any, container: Any, token: Any, log_lines: io.StringIO) -> None:
    r = client.post("/customers", headers=token("sun", "customer_service"),
                    json={"department": "ops", "kind": "individual", "name": "某某"})
    assert r.status_code == 201
    cid = r.headers["X-Correlation-ID"]
    [line] = [x for x in parsed(log_lines) if x.get("route") == "/customers"]
    assert line["correlation_id"] == cid
    [envelope] = container.runner.source(r.json()["position"] - 1, 1)
    assert envelope.meta["correlation_id"] == cid


def test_contact_phone_numbers_and_emails_never_reach_the_logs(
        client: Any, token: Any, log_lines: io.StringIO) -> None:
    agent = token("sun", "customer_service")
    r = client.post("/customers", headers=agent,
                    json={"department": "ops", "kind": "company", "name": "Private Ltd",
                          "credit_code": "91110000MA01PRV002"})
    cid = r.json()["id"]
    ok = client.post(f"/customers/{cid}/add-contact", headers=agent,
                     json={"name": "李娜", "phone": PHONE, "email": EMAIL})
    assert ok.status_code == 200, ok.text
    refused = client.post(f"/customers/{cid}/add-contact", headers=agent,
                          json={"name": "李娜", "phone": PHONE, "email": "not an email"})
    assert refused.status_code == 422
    # Even a message or a traceback quoting them is masked.
    logging.getLogger("tests.logging").warning("contact %s / %s", PHONE, EMAIL)
    try:
        raise ValueError(f"bad contact {EMAIL} {PHONE}")
    except ValueError:
        logging.getLogger("tests.logging").exception("failed")
    text = log_lines.getvalue()
    assert text, "nothing was logged"
    for secret in (PHONE, EMAIL, "1234 5678", "li.na.private", "李娜"):
        assert secret not in text
    assert "[email]" in text and "[phone]" in text


def test_redaction_keeps_ids_dates_and_numbers_that_are_not_phone_numbers() -> None:
    keep = ("position 1234567 of 2026-03-31T10:00:00 at 2026-03-31",
            "record 8c2f43e1-1234-4abc-9def-1234567890ab version 12",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736", "took 12.5 ms, 1000 events")
    for text in keep:
        assert redact(text) == text
    assert redact("call 010-6552 1234 now") == "call [phone] now"
    assert redact("mail a.b@c.example.org") == "mail [email]"


def test_the_logging_config_routes_uvicorn_through_the_json_handler() -> None:
    config = logging_config("INFO", "json", {"projections.engine": "debug"})
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"  # we log requests
    assert config["loggers"]["projections.engine"]["level"] == "DEBUG"
    assert config["formatters"]["default"]["()"] == "service.logs.JsonFormatter"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("WARNING", "text")
        assert root.level == logging.WARNING
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
