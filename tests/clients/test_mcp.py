"""`waiaas mcp serve` driven by the official MCP client (PyPI `mcp`), started as a subprocess the
way Claude Desktop does, against a daemon on anvil that the Rust harness (tests/clients.rs)
starts. The token comes from `waiaas mcp setup`; anvil is the witness for the transfer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

E = os.environ
BASE, BIN, DIR = E.get("WAIAAS_IT_BASE_URL"), E.get("WAIAAS_IT_BIN"), E.get("WAIAAS_IT_DATA_DIR")
pytestmark = pytest.mark.skipif(not BASE, reason="needs the daemon started by tests/clients.rs")
TOKEN_FILE = os.path.join(DIR or "", "mcp-token")
RECIPIENT = "0x000000000000000000000000000000000000c0de"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in E.items() if not k.startswith("WAIAAS_")}
    env["WAIAAS_MASTER_PASSWORD"] = E["WAIAAS_IT_MASTER_PASSWORD"]
    env["WAIAAS_DAEMON_PORT"] = BASE.rsplit(":", 1)[1]
    return subprocess.run([BIN, "--data-dir", DIR, *args], env=env, capture_output=True, text=True, timeout=60)


def rpc(method: str, params: list) -> object:
    return httpx.post(E["WAIAAS_IT_ANVIL"], json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()["result"]


def master(method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, BASE + path, json=body, headers={"X-Master-Password": E["WAIAAS_IT_MASTER_PASSWORD"]})


def server() -> StdioServerParameters:
    return StdioServerParameters(command=BIN, args=["--data-dir", DIR, "mcp", "serve"],
                                 env={"WAIAAS_DATA_DIR": DIR, "WAIAAS_BASE_URL": BASE, "PATH": E.get("PATH", "")})


def payload(result) -> dict:
    assert len(result.content) == 1 and result.content[0].type == "text"
    return json.loads(result.content[0].text)


@pytest.fixture(scope="module", autouse=True)
def setup_token():
    out = cli("mcp", "setup", "--agent", E["WAIAAS_IT_AGENT"], "--output", "json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["agentId"] == E["WAIAAS_IT_AGENT"] and info["tokenPath"] == TOKEN_FILE
    assert oct(os.stat(TOKEN_FILE).st_mode & 0o777) == "0o600"
    rpc("anvil_setBalance", [E["WAIAAS_IT_AGENT_ADDRESS"], hex(3 * 10**18)])
    yield


async def test_tools_resources_and_a_transfer_that_lands():
    async with stdio_client(server()) as (r, w), ClientSession(r, w) as s:
        init = await s.initialize()
        assert init.server_info.name == "waiaas"
        tools = {t.name for t in (await s.list_tools()).tools}
        assert tools == {"get_address", "get_balance", "get_assets", "send_token", "call_contract", "approve_token",
                         "send_batch", "dry_run", "get_transaction", "list_transactions",
                         "list_pending_transactions", "get_session_info"}
        uris = {str(x.uri) for x in (await s.list_resources()).resources}
        assert uris == {"waiaas://wallet/address", "waiaas://wallet/balance", "waiaas://system/status"}
        status = json.loads((await s.read_resource("waiaas://system/status")).contents[0].text)
        assert status["status"] == "healthy", status

        balance = await s.call_tool("get_balance", {})
        assert not balance.is_error and payload(balance)["balance"] == str(3 * 10**18)

        dry = await s.call_tool("dry_run", {"transaction": {"to": RECIPIENT, "amount": "4242"}})
        assert not dry.is_error, payload(dry)
        assert payload(dry)["tier"] == "INSTANT", payload(dry)

        before = int(rpc("eth_getBalance", [RECIPIENT, "latest"]), 16)
        sent = await s.call_tool("send_token", {"to": RECIPIENT, "amount": "4242"})
        assert not sent.is_error, payload(sent)
        tx = payload(sent)
        assert tx["status"] == "CONFIRMED"
        assert int(rpc("eth_getBalance", [RECIPIENT, "latest"]), 16) - before == 4242, "landed with the exact amount"

        got = await s.call_tool("get_transaction", {"transaction_id": tx["transactionId"]})
        assert payload(got)["status"] == "CONFIRMED" and payload(got)["txHash"] == tx["txHash"]
        listed = payload(await s.call_tool("list_transactions", {"limit": 5}))
        assert listed["transactions"][0]["id"] == tx["transactionId"]


async def test_an_api_error_is_an_error_result_with_its_code():
    async with stdio_client(server()) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        bad = await s.call_tool("send_token", {"to": "not-an-address", "amount": "1"})
        assert bad.is_error
        err = payload(bad)
        assert err["code"] == "VALIDATION_ERROR" and err["retryable"] is False and "message" in err
        too_much = await s.call_tool("send_token", {"to": RECIPIENT, "amount": str(10**24)})
        # Above the default tiers, with no notification channel: refused, with the details.
        assert too_much.is_error and payload(too_much)["code"] == "POLICY_DENIED", payload(too_much)
        assert payload(too_much)["details"]["reason"] == "NOTIFICATIONS_UNAVAILABLE"
        missing = await s.call_tool("get_transaction", {"transaction_id": "0190f2a0-0000-7000-8000-000000000000"})
        assert missing.is_error and payload(missing)["code"] == "TX_NOT_FOUND", payload(missing)


async def test_a_renewed_token_is_on_disk_before_it_is_used():
    old = open(TOKEN_FILE).read()
    async with stdio_client(server()) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        info = payload(await s.call_tool("get_session_info", {}))
        # Past 60 % of the session's lifetime on the daemon's (dev) clock: the manager renews.
        assert master("POST", "/v1/admin/dev/clock", {"advanceSeconds": int(604800 * 0.6) + 60}).status_code == 200
        deadline = time.monotonic() + 30
        while open(TOKEN_FILE).read() == old and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        new = open(TOKEN_FILE).read()
        assert new != old and new.startswith("wai_sess_"), "the renewed token reached the file"
        assert oct(os.stat(TOKEN_FILE).st_mode & 0o777) == "0o600"
        after = await s.call_tool("get_session_info", {})
        assert not after.is_error, payload(after)
        assert payload(after)["renewalCount"] == info.get("renewalCount", 0) + 1, payload(after)
        # The file's token is the live one; the replaced one no longer is.
        h = {"Authorization": f"Bearer {new}"}
        assert httpx.get(BASE + "/v1/wallet/address", headers=h).status_code == 200
        stale = httpx.get(BASE + "/v1/wallet/address", headers={"Authorization": f"Bearer {old}"})
        assert stale.status_code == 401, stale.text


def test_refresh_token_replaces_the_session():
    old = open(TOKEN_FILE).read()
    out = cli("mcp", "refresh-token", "--output", "json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["oldSessionRevoked"] is True and info["newSessionId"] != info["oldSessionId"]
    new = open(TOKEN_FILE).read()
    assert new != old
    assert httpx.get(BASE + "/v1/wallet/address", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    revoked = httpx.get(BASE + "/v1/wallet/address", headers={"Authorization": f"Bearer {old}"})
    assert revoked.status_code == 401


async def test_a_401_rereads_the_token_file_once():
    """The 401 rule: the session was replaced on disk (e.g. by `mcp refresh-token` from another
    shell) and the old one revoked; the next call re-reads the file and succeeds."""
    async with stdio_client(server()) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        first = payload(await s.call_tool("get_session_info", {}))
        out = cli("mcp", "refresh-token", "--output", "json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["oldSessionRevoked"] is True
        again = await s.call_tool("get_session_info", {})
        assert not again.is_error, payload(again)
        assert payload(again)["id"] != first["id"], "the server now uses the file's new session"
        # A revoked session with nothing new on disk: the error, with the way out.
        assert master("DELETE", f"/v1/sessions/{payload(again)['id']}").status_code == 200
        dead = await s.call_tool("get_balance", {})
        assert dead.is_error and payload(dead)["code"] == "SESSION_REVOKED"
        assert payload(dead)["hint"] == "Run: waiaas mcp refresh-token"
