"""`memtrail sink ...` refuses bad configuration with a clear message before touching anything."""

from __future__ import annotations

from typer.testing import CliRunner

from memtrail.cli import app


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def test_opensearch_auth_is_either_basic_or_api_key() -> None:
    r = _run("sink", "opensearch", "--url", "http://x", "--user", "a", "--password", "b", "--api-key", "k")
    assert r.exit_code == 2 and "either user/password or an API key" in r.output


def test_wazuh_mode_and_password_are_checked() -> None:
    r = _run("sink", "wazuh", "--mode", "syslog")
    assert r.exit_code == 2 and "'api', 'socket' or 'file'" in r.output
    r = _run("sink", "wazuh", "--mode", "api", "--url", "http://x", env={"MEMTRAIL_WAZUH_PASSWORD": ""})
    assert r.exit_code == 2 and "needs a password" in r.output


def test_unreachable_broker_is_reported(tmp_path) -> None:
    r = _run(
        "sink", "wazuh", "--mode", "file", "--file-path", str(tmp_path / "a.json"),
        "--bootstrap", "127.0.0.1:1", "--metrics-port", "-1",
    )  # fmt: skip
    assert r.exit_code == 2 and "unreachable" in r.output
