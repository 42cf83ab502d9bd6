"""The sinks against a real OpenSearch and a real Wazuh manager.

Given by URL (``MEMTRAIL_TEST_OPENSEARCH_URL`` [+ ``_USER``/``_PASSWORD``],
``MEMTRAIL_TEST_WAZUH_URL`` [+ ``_USER``/``_PASSWORD``]) or, where a Docker engine answers,
started with testcontainers. Neither server nor a Docker engine exists on the development
machine, so these tests skip there with that reason.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from sinks.opensearch.config import OpenSearchSettings
from sinks.opensearch.sink import OpenSearchSink
from sinks.wazuh.api import WazuhApiSink
from sinks.wazuh.config import WazuhSettings
from tests.sinks.sinkfakes import incoming, make_alert

pytestmark = pytest.mark.slow


def _docker_reason() -> str | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine for testcontainers ({type(exc).__name__})"
    return None


def _wait_http(url: str, timeout: float, **kw: object) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, verify=False, timeout=5, **kw).status_code < 500:  # type: ignore[arg-type]
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"{url} did not come up in {timeout:.0f}s")


@pytest.fixture(scope="module")
def opensearch_url() -> Iterator[tuple[str, str | None, str | None]]:
    url = os.environ.get("MEMTRAIL_TEST_OPENSEARCH_URL")
    if url:
        yield (
            url,
            os.environ.get("MEMTRAIL_TEST_OPENSEARCH_USER"),
            os.environ.get("MEMTRAIL_TEST_OPENSEARCH_PASSWORD"),
        )
        return
    reason = _docker_reason()
    if reason:
        pytest.skip(f"MEMTRAIL_TEST_OPENSEARCH_URL not set and {reason}")
    from testcontainers.core.container import DockerContainer

    c = (
        DockerContainer("opensearchproject/opensearch:2.17.1")
        .with_env("discovery.type", "single-node")
        .with_env("DISABLE_SECURITY_PLUGIN", "true")
        .with_env("OPENSEARCH_JAVA_OPTS", "-Xms512m -Xmx512m")
        .with_exposed_ports(9200)
    )
    with c:
        url = f"http://{c.get_container_host_ip()}:{c.get_exposed_port(9200)}"
        _wait_http(url, 180)
        yield url, None, None


@pytest.fixture(scope="module")
def wazuh_url() -> Iterator[tuple[str, str, str]]:
    url = os.environ.get("MEMTRAIL_TEST_WAZUH_URL")
    if url:
        yield (
            url,
            os.environ.get("MEMTRAIL_TEST_WAZUH_USER", "wazuh"),
            os.environ.get("MEMTRAIL_TEST_WAZUH_PASSWORD", "wazuh"),
        )
        return
    reason = _docker_reason()
    if reason:
        pytest.skip(f"MEMTRAIL_TEST_WAZUH_URL not set and {reason}")
    from testcontainers.core.container import DockerContainer

    c = DockerContainer("wazuh/wazuh-manager:4.9.2").with_exposed_ports(55000)
    with c:
        url = f"https://{c.get_container_host_ip()}:{c.get_exposed_port(55000)}"
        _wait_http(url, 300)
        yield url, "wazuh", "wazuh"


async def test_real_opensearch_index_update_replay_and_rejection(opensearch_url) -> None:
    url, user, password = opensearch_url
    prefix = f"memtrail-test-{uuid.uuid4().hex[:8]}"
    cfg = OpenSearchSettings(
        url=url,
        user=user,
        password=password,
        verify_certs=False,
        index_prefix=prefix,
        retention_days=3,
    )
    sink = OpenSearchSink(cfg)
    try:
        await sink.start()
        bad = make_alert(3, first_seen="not-a-date")  # memtrail.first_seen is a date
        rejected = await sink.deliver(incoming([make_alert(1), make_alert(2), bad]))
        assert [r.item.id for r in rejected] == ["alert-00003"]
        assert "mapper_parsing_exception" in rejected[0].reason
        assert await sink.deliver(incoming([make_alert(1, count=4)])) == []
        assert await sink.deliver(incoming([make_alert(1), make_alert(2)])) == []  # replay: 409 = done
        client = sink.client
        index = f"{prefix}-2026.11.22"
        await client.indices.refresh(index=index)
        doc = await client.get(index=index, id="alert-00001")
        assert doc["_version"] == 4 and doc["_source"]["memtrail"]["count"] == 4
        assert (await client.count(index=index))["count"] == 2
        tmpl = await client.transport.perform_request("GET", "/_index_template/memtrail-alerts")
        assert tmpl["index_templates"][0]["index_template"]["index_patterns"] == [f"{prefix}-*"]
    finally:
        await sink.client.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)
        await sink.close()


async def test_real_wazuh_manager_accepts_events(wazuh_url) -> None:
    url, user, password = wazuh_url
    sink = WazuhApiSink(WazuhSettings(url=url, user=user, password=password, verify_certs=False))
    try:
        await sink.start()
        assert await sink.deliver(incoming([make_alert(i) for i in range(120)])) == []
    finally:
        await sink.close()
