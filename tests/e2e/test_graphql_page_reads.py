"""A page of projects answers the same whichever way its nested risks and cost are read: by
the page at once (what the query selects, read from the document), or project by project
through the DataLoaders (a directive makes the selection conditional), or with the whole
project document (``detail``)."""

from __future__ import annotations

from typing import Any

from tests.e2e.test_project_lifecycle import PROJECT, post
from tests.e2e.test_risks import assess, identify

FIELDS = """name status requestedBudget lead { userId name }
  risks { title level score status suggestedStrategy openWarningCount overdueActionCount }
  all: risks(openOnly: $open) { title status assessments { score } }
  cost { budget actual remaining utilisationPercent actualCount }"""


def _page(client: Any, who: dict[str, str], query: str, pos: int, **variables: Any,
          ) -> tuple[list[dict[str, Any]], int]:
    r = client.post("/graphql", json={"query": query, "variables": {
        "pos": pos, "open": False, **variables}}, headers=who)
    body = r.json()
    assert r.status_code == 200 and not body.get("errors"), body
    return body["data"]["projects"]["edges"], body["extensions"]["sqlStatements"]


def test_a_page_reads_the_same_preloaded_or_through_the_loaders(client: Any,
                                                                token: Any) -> None:
    quinn = token("quinn", "member", departments=("pgr",))
    last = 0
    for i in range(4):
        pid = post(client, "/projects", quinn, {**PROJECT, "department": "pgr",
                                                "name": f"Page {i}"}, expect=201)["id"]
        for likelihood in (1, 4):
            rid = identify(client, quinn, department="pgr", owner="quinn", scope="project",
                           linked_id=pid)["id"]
            last = assess(client, quinn, rid, likelihood, 2)["position"]
        if i == 3:  # the newest: on the page
            # every read below waits for this last write (it changes the open risks)
            last = post(client, f"/risks/{rid}/close", quinn, {"outcome": "accepted"})["position"]
    head = """query($pos: Int, $open: Boolean) { projects(first: 3,
      waitForPosition: $pos, filter: {department: ["pgr"]}) { edges { node { """
    preloaded, n_preloaded = _page(client, quinn, head + FIELDS + " } } } }", last)
    # a fragment spread is followed like the fields it holds
    fragment, n_fragment = _page(client, quinn, head + "...P } } } }\nfragment P on Project {"
                                 + FIELDS + "}", last)
    # @include: the page does not look ahead; every project asks its DataLoader
    loaded, n_loaded = _page(client, quinn, head + FIELDS.replace(
        "cost {", "cost @include(if: true) {") + " } } } }", last)
    # detail: the whole document is read
    whole, _ = _page(client, quinn, head + FIELDS + " detail } } } }", last)
    assert preloaded == fragment == loaded == [
        {"node": {k: v for k, v in e["node"].items() if k != "detail"}} for e in whole]
    assert n_preloaded == n_fragment == n_loaded == 5  # page, count, risks ×2, cost
    assert any(len(e["node"]["all"]) > len(e["node"]["risks"]) for e in preloaded)
    assert all(e["node"]["lead"] is None or e["node"]["lead"]["userId"] for e in preloaded)
