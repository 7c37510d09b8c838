"""Journey and customer ids are opaque in URL paths: any id ingest accepts is found as itself by every route."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from journeyscope.client import ApiError, Client, path_segment
from journeyscope.server.settings import ServerSettings
from receiver_support import RunningServer, journey_spans, make_request, no_proxy, running_server

#: Ids that look like paths, escapes, sub-routes or queries; each is a journey of its own.
ODD_IDS = ["plain", "plain/detail", "a/b", "a/b/", "/lead", "100%", "a%2Fb", "%25", "detail", ".", "..", "a?b=c",
           "x#y", "sp ace", "ünï/ćødé", "tab\tnew\nline", "back\\slash", "x" * 256]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    no_proxy()
    db = tmp_path_factory.mktemp("ids") / "ids.duckdb"
    with running_server(ServerSettings(db=str(db), evaluate_online=False)) as running:
        spans = [s for i, jid in enumerate(ODD_IDS) for s in journey_spans(jid, 2, trace=100 + i)]
        for span, i in zip(spans, range(len(spans))):  # each journey its own customer, whose id is odd too
            span.attributes[1].value.string_value = f"c/{i // 2}"
        answer = httpx.post(running.traces_url, content=make_request(spans).SerializeToString(),
                            headers={"content-type": "application/x-protobuf"})
        assert answer.status_code == 200, answer.text
        running.flush()
        yield running


@pytest.mark.parametrize("journey_id", ODD_IDS)
def test_every_route_finds_the_journey_as_itself(server: RunningServer, journey_id: str) -> None:
    with Client(server.base_url) as client:
        assert client.journey(journey_id)["journey_id"] == journey_id
        assert client.route(journey_id).journey_id == journey_id
    detail = httpx.get(f"{server.base_url}/v1/journeys/{path_segment(journey_id)}/detail")
    assert detail.status_code == 200, detail.text
    assert detail.json()["journey_id"] == journey_id


def test_an_encoded_slash_is_never_a_sub_route(server: RunningServer) -> None:
    # journey "plain" exists; "plain%2Fdetail" is the journey "plain/detail", not plain's detail page
    state = httpx.get(f"{server.base_url}/v1/journeys/plain%2Fdetail").json()
    assert state["journey_id"] == "plain/detail"
    hot = server.app.state.hot_routes  # and once held, the hot route answers it from memory, as itself
    answered = hot.answered
    assert httpx.get(f"{server.base_url}/v1/journeys/plain%2Fdetail").json()["journey_id"] == "plain/detail"
    assert hot.answered == answered + 1
    missing = httpx.get(f"{server.base_url}/v1/journeys/nobody%2Fdetail")
    assert missing.status_code == 404 and "nobody/detail" in missing.json()["detail"]


def test_ids_over_the_limit_are_a_422_naming_the_parameter(server: RunningServer) -> None:
    answer = httpx.get(f"{server.base_url}/v1/journeys/{'x' * 257}")
    assert answer.status_code == 422 and "journey_id" in answer.text
    with Client(server.base_url) as client, pytest.raises(ApiError) as raised:
        client.route("y" * 257)
    assert raised.value.status == 422


def test_forget_takes_a_customer_id_with_a_slash(server: RunningServer) -> None:
    index = ODD_IDS.index("a/b")
    answer = httpx.post(f"{server.base_url}/v1/customers/{path_segment(f'c/{index}')}/forget")
    assert answer.status_code == 200, answer.text
    assert answer.json()["customer_id"] == f"c/{index}" and answer.json()["journeys"] == 1
    server.flush()
    assert httpx.get(f"{server.base_url}/v1/journeys/a%2Fb").status_code == 404
    assert httpx.get(f"{server.base_url}/v1/journeys/plain").status_code == 200
