"""Personal data over HTTP, as the issue says it will be checked: an individual customer with a
contact person (distinctive name, phone and e-mail), a service request, views read by
authorised people; then erasure by the data protection officer (refused to a member and an
auditor, refused without a reason) — and afterwards every view shows the fields erased, the
chain still verifies, and a ``pg_dump`` of the whole database holds none of the plaintext.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg
import pytest

from tests.conftest import make_settings
from tests.integration.test_backup_roundtrip import pg_tools

NAME = "Qiu Xiaolan-Zyxw"            # an individual customer: her name is personal data
CONTACT = "Ouyang Feiyu-Qkv"
PHONE = "+86 139 7531 8642"
EMAIL = "feiyu.ouyang.7f3q@example.cn"
TITLE = "Chief Tea Taster Zq"
SECRETS = (NAME, CONTACT, PHONE, EMAIL, TITLE)


@pytest.fixture(scope="module")
def container(module_database: Any) -> Any:
    from service.bootstrap import bootstrap

    # Snapshots every 2 versions: the customer's snapshots hold personal state too.
    c = bootstrap(make_settings(snapshot_interval=2), module_database, start_projector=True)
    yield c
    c.close()


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {
        "cara": token("cara", "customer_service", departments=("care",)),
        "mia": token("mia", "member", departments=("care",)),
        "max": token("max", "dept_manager", departments=("care",)),
        "audrey": token("audrey", "auditor"),
        "dora": token("dora", "data_protection"),
        "lena": token("lena", "leadership"),
    }


def post(client: Any, path: str, who: dict[str, str], body: dict[str, Any] | None = None,
         expect: int = 200) -> dict[str, Any]:
    r = client.post(path, json=body or {}, headers=who)
    assert r.status_code == expect, r.text
    return r.json()


def gql(client: Any, who: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": query, "variables": variables}, headers=who)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]


def encodings(text: str) -> list[bytes]:
    """How a string can appear in a plain-format dump: as text (jsonb, text columns), as the
    hex of its UTF-8 bytes (bytea columns such as the stored events), JSON-escaped."""
    raw = text.encode()
    return [raw, raw.hex().encode(), json.dumps(text).encode()[1:-1]]


def dump(database: Any) -> bytes:
    with psycopg.connect(database.conninfo) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    tools = pg_tools(major)
    if tools is None:
        pytest.skip(f"no pg_dump {major} found")
    return subprocess.run([str(tools / "pg_dump"), "--format=plain", "--no-owner",
                           f"--dbname={database.conninfo}"], check=True, capture_output=True,
                          timeout=120).stdout


CUSTOMER_QUERY = """query($id: ID!, $pos: Int) { customer(id: $id, waitForPosition: $pos) {
    name personalDataErased personalDataErasedAt
    contacts { id name phone email title isPrimary }
    serviceRequests { recordId status }
    detail } }"""


@pytest.fixture(scope="module")
def customer(client: Any, people: dict, container: Any) -> dict[str, Any]:
    cara = people["cara"]
    cid = post(client, "/customers", cara, {"department": "care", "kind": "individual",
                                            "name": NAME, "needs": "green tea"},
               expect=201)["id"]
    post(client, f"/customers/{cid}/add-contact", cara,
         {"name": CONTACT, "phone": PHONE, "email": EMAIL, "title": TITLE})
    post(client, f"/customers/{cid}/add-contact", cara, {"name": "Second Person-Xq"})
    post(client, f"/customers/{cid}/change-status", cara, {"to": "active", "reason": "order"})
    request = post(client, "/service-requests", cara, {
        "customer_id": cid, "department": "care", "channel": "phone", "category": "inquiry",
        "description": "Asks about delivery times"}, expect=201)
    return {"id": cid, "request": request["id"], "position": request["position"]}


def test_authorised_readers_see_the_personal_data(client: Any, people: dict,
                                                  customer: dict) -> None:
    cid = customer["id"]
    view = client.get(f"/customers/{cid}", headers=people["mia"]).json()
    assert view["name"] == NAME and view["personal_data_erased"] is False
    assert {(c["name"], c["phone"], c["email"]) for c in view["contacts"]} >= {
        (CONTACT, PHONE, EMAIL)}
    data = gql(client, people["mia"], CUSTOMER_QUERY, id=cid, pos=customer["position"])
    c = data["customer"]
    assert c["name"] == NAME and c["personalDataErased"] is False
    assert c["contacts"][0]["phone"] == PHONE
    assert [r["recordId"] for r in c["serviceRequests"]] == [customer["request"]]


def test_stored_events_and_snapshots_hold_only_ciphertext(container: Any,
                                                          customer: dict) -> None:
    rows = container.store.execute(
        "SELECT state FROM stored_events WHERE originator_id = %s UNION ALL"
        " SELECT state FROM snapshots WHERE originator_id = %s",
        (customer["id"], customer["id"]))
    assert len(rows) >= 5
    blob = b"\n".join(bytes(r["state"]) for r in rows)
    for secret in SECRETS:
        assert secret.encode() not in blob
    assert blob.count(b'"_enc"') >= 3  # registration, two contacts (+ snapshots)
    key = container.store.execute("SELECT key, erased_at FROM personal_data_keys"
                                  " WHERE record_id = %s", (customer["id"],))
    assert len(key[0]["key"]) == 32 and key[0]["erased_at"] is None


def test_before_erasure_only_the_read_models_hold_plaintext(
        container: Any, customer: dict, module_database: Any) -> None:
    assert container.runner.wait_for(customer["position"], timeout=10)
    text = dump(module_database)
    # The dump check below is not vacuous: the views (jsonb) show the data to authorised
    # readers until erasure; no bytea column (events, snapshots, projection state) holds it.
    assert PHONE.encode() in text and EMAIL.encode() in text and NAME.encode() in text
    assert not [s for s in SECRETS if s.encode().hex().encode() in text]


def test_erasure_is_refused_to_members_and_auditors_and_needs_a_reason(
        client: Any, people: dict, customer: dict, container: Any) -> None:
    path = f"/customers/{customer['id']}/erase-personal-data"
    for who in ("mia", "max", "audrey"):
        r = client.post(path, json={"reason": "asked"}, headers=people[who])
        assert r.status_code == 403, (who, r.text)
        assert r.json()["rule"] in ("personal_data_eraser", "auditor_read_only")
    for body in ({}, {"reason": "  "}):
        r = client.post(path, json=body, headers=people["dora"])
        assert r.status_code == 422, r.text
    logged = container.store.execute(
        "SELECT actor_id, status FROM refused_commands WHERE record_id = %s"
        " AND command LIKE '%%erase_personal_data' ORDER BY id", (customer["id"],))
    assert [r["actor_id"] for r in logged if r["status"] == 403] == ["mia", "max", "audrey"]


@pytest.fixture(scope="module")
def erased(client: Any, people: dict, customer: dict) -> dict[str, Any]:
    done = post(client, f"/customers/{customer['id']}/erase-personal-data", people["dora"],
                {"reason": "PIPL art. 47 request of 2026-03-02, ticket DP-17"})
    assert done["events"][0]["type"] == "PersonalDataErased"
    return done


def test_erasure_is_an_event_and_cannot_be_repeated(client: Any, people: dict, customer: dict,
                                                    erased: dict) -> None:
    r = client.post(f"/customers/{customer['id']}/erase-personal-data",
                    json={"reason": "again"}, headers=people["lena"])
    assert r.status_code == 409 and r.json()["rule"] == "personal_data_already_erased"
    r = client.post(f"/customers/{customer['id']}/add-contact", json={"name": "New"},
                    headers=people["cara"])
    assert r.status_code == 409 and r.json()["rule"] == "personal_data_erased"
    # the rest of the record lives on
    post(client, f"/customers/{customer['id']}/record-interaction", people["cara"],
         {"date": "2026-03-03", "channel": "phone", "summary": "confirmed erasure"})


def test_every_view_shows_the_personal_data_erased(client: Any, people: dict, customer: dict,
                                                   erased: dict, container: Any) -> None:
    cid = customer["id"]
    view = client.get(f"/customers/{cid}", headers=people["mia"]).json()
    assert view["personal_data_erased"] is True and view["personal_data_erased_at"]
    assert view["name"] is None and view["needs"] == "green tea"
    assert len(view["contacts"]) == 2
    for contact in view["contacts"]:
        assert [contact[f] for f in ("name", "phone", "email", "title")] == [None] * 4
    data = gql(client, people["mia"], CUSTOMER_QUERY, id=cid, pos=erased["position"])
    c = data["customer"]
    assert c["personalDataErased"] is True and c["personalDataErasedAt"]
    assert c["name"] is None and {ct["phone"] for ct in c["contacts"]} == {None}
    assert [r["status"] for r in c["serviceRequests"]] == ["open"]
    listed = gql(client, people["mia"], """query { customers(first: 50) {
        edges { node { id name personalDataErased } } } }""")
    mine = [e["node"] for e in listed["customers"]["edges"]
            if e["node"]["id"] == c["detail"]["id"] or e["node"]["name"] == NAME]
    assert all(n["name"] is None for n in mine)
    text = json.dumps([view, data, listed])
    assert not [s for s in SECRETS if s in text]


def test_audit_history_and_as_of_read_erased_rather_than_fail(
        client: Any, people: dict, customer: dict, erased: dict) -> None:
    cid = customer["id"]
    history = client.get(f"/audit/records/customer/{cid}/history",
                         headers=people["audrey"]).json()
    assert history["personal_data_erased"] is True
    types = [e["event_type"] for e in history["entries"]]
    assert types[:2] == ["Registered", "ContactAdded"] and "PersonalDataErased" in types
    erasure = history["entries"][types.index("PersonalDataErased")]
    assert erasure["actor"]["user_id"] == "dora" and erasure["reason"].startswith("PIPL")
    assert history["entries"][0]["state"]["personal_data_erased"] is True
    for version in (1, 2, 3):
        past = client.get(f"/audit/records/customer/{cid}/as-of", headers=people["audrey"],
                          params={"version": version}).json()
        assert past["personal_data_erased"] is True and past["name"] is None
        assert all(ct["phone"] is None for ct in past["contacts"])
    gq = gql(client, people["audrey"], """query($id: ID!) {
        recordHistory(recordType: "customer", id: $id) { personalDataErased entries { eventType } }
        recordAsOf(recordType: "customer", id: $id, version: 2) }""", id=cid)
    assert gq["recordHistory"]["personalDataErased"] is True
    assert gq["recordAsOf"]["contacts"][0]["name"] is None
    text = json.dumps([history, gq])
    assert not [s for s in SECRETS if s in text]
    log = client.get("/audit/log", headers=people["audrey"],
                     params={"record_id": cid, "event_type": "PersonalDataErased"}).json()
    assert [i["actor_id"] for i in log["items"]] == ["dora"]


def test_the_chain_still_verifies_after_erasure(client: Any, people: dict,
                                                erased: dict) -> None:
    report = client.post("/integrity/verify", headers=people["audrey"]).json()
    assert report["ok"] is True, report["summary"]


def test_no_plaintext_remains_anywhere_in_a_database_dump(
        client: Any, people: dict, customer: dict, erased: dict, container: Any,
        module_database: Any) -> None:
    assert container.runner.wait_for(erased["position"], timeout=10)
    # an auditor's as-of read after erasure heals snapshots: without personal data
    client.get(f"/audit/records/customer/{customer['id']}/as-of", headers=people["audrey"],
               params={"version": 4})
    key = container.store.execute("SELECT key, erased_at, erased_by, reason, erasure_position"
                                  " FROM personal_data_keys WHERE record_id = %s",
                                  (customer["id"],))[0]
    assert key["key"] is None and key["erased_at"] and key["erased_by"] == "dora"
    assert key["erasure_position"] == erased["position"]
    text = dump(module_database)
    assert b"personal_data_keys" in text and b"stored_events" in text
    found = [(s, form) for s in SECRETS for form in encodings(s) if form in text]
    assert not found, f"plaintext left in the dump: {found}"
