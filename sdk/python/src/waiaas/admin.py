"""``WAIaaSAdminClient``: the operator's side (``X-Master-Password``)."""

from __future__ import annotations

from typing import Any, Optional

import httpx
from pydantic.alias_generators import to_camel

from ._http import DEFAULT_BASE_URL, Transport
from .models import Agent, Policy, Session


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class WAIaaSAdminClient:
    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        master_password: str = "",
        timeout: float = 180.0,
        max_retries: int = 3,
        *,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self._http = Transport(base_url, {"X-Master-Password": master_password}, timeout, max_retries, transport)

    async def __aenter__(self) -> "WAIaaSAdminClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.close()

    # --- sessions ------------------------------------------------------------------------------
    async def create_session(
        self,
        agent_id: str,
        *,
        expires_in: Optional[int] = None,
        constraints: Optional[dict[str, Any]] = None,
        max_renewals: Optional[int] = None,
    ) -> Session:
        body = _drop_none(
            {"agentId": agent_id, "expiresIn": expires_in, "constraints": constraints, "maxRenewals": max_renewals}
        )
        return Session.model_validate(await self._http.request("POST", "/v1/sessions", json=body))

    async def list_sessions(self, agent_id: Optional[str] = None) -> list[Session]:
        v = await self._http.request("GET", "/v1/sessions", params={"agentId": agent_id})
        return [Session.model_validate(s) for s in v.get("sessions", [])]

    async def revoke_session(self, session_id: str) -> dict[str, Any]:
        return await self._http.request("DELETE", f"/v1/sessions/{session_id}")

    # --- agents --------------------------------------------------------------------------------
    async def create_agent(
        self,
        *,
        name: Optional[str] = None,
        chain: Optional[str] = None,
        network: Optional[str] = None,
        owner: Optional[str] = None,
        backend: Optional[str] = None,
    ) -> Agent:
        body = _drop_none({"name": name, "chain": chain, "network": network, "owner": owner, "backend": backend})
        return Agent.model_validate(await self._http.request("POST", "/v1/agents", json=body))

    async def list_agents(self) -> list[Agent]:
        v = await self._http.request("GET", "/v1/agents")
        return [Agent.model_validate(a) for a in v.get("agents", [])]

    async def get_agent(self, agent_id: str) -> Agent:
        return Agent.model_validate(await self._http.request("GET", f"/v1/agents/{agent_id}"))

    async def update_agent(self, agent_id: str, **fields: Any) -> Agent:
        body = {to_camel(k): v for k, v in fields.items()}
        return Agent.model_validate(await self._http.request("PATCH", f"/v1/agents/{agent_id}", json=body))

    async def suspend_agent(self, agent_id: str, reason: Optional[str] = None) -> dict[str, Any]:
        return await self._http.request("POST", f"/v1/agents/{agent_id}/suspend", json=_drop_none({"reason": reason}))

    async def resume_agent(self, agent_id: str) -> dict[str, Any]:
        return await self._http.request("POST", f"/v1/agents/{agent_id}/resume", json={})

    async def terminate_agent(self, agent_id: str) -> dict[str, Any]:
        return await self._http.request("DELETE", f"/v1/agents/{agent_id}")

    # --- policies (rules are passed through unchanged: their keys are not camelised) ------------
    async def list_policies(self, agent_id: Optional[str] = None) -> list[Policy]:
        v = await self._http.request("GET", "/v1/owner/policies", params={"agentId": agent_id})
        return [Policy.model_validate(p) for p in v.get("policies", [])]

    async def create_policy(
        self,
        type: str,
        rules: dict[str, Any],
        *,
        agent_id: Optional[str] = None,
        priority: Optional[int] = None,
        enabled: Optional[bool] = None,
    ) -> Policy:
        body = _drop_none({"type": type, "rules": rules, "agentId": agent_id, "priority": priority, "enabled": enabled})
        return Policy.model_validate(await self._http.request("POST", "/v1/owner/policies", json=body))

    async def update_policy(self, policy_id: str, **fields: Any) -> Policy:
        body = _drop_none({"rules": fields.get("rules"), "priority": fields.get("priority"), "enabled": fields.get("enabled")})
        return Policy.model_validate(await self._http.request("PUT", f"/v1/owner/policies/{policy_id}", json=body))

    async def delete_policy(self, policy_id: str) -> dict[str, Any]:
        return await self._http.request("DELETE", f"/v1/owner/policies/{policy_id}")

    async def dry_run_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._http.request("POST", "/v1/owner/policies/dry-run", json=body)

    # --- the owner's queue, channels, kill switch, status --------------------------------------
    async def list_pending_approvals(self, agent_id: Optional[str] = None) -> list[dict[str, Any]]:
        v = await self._http.request("GET", "/v1/owner/pending-approvals", params={"agentId": agent_id, "limit": 100})
        return list(v.get("transactions", []))

    async def reject_transaction(self, tx_id: str, reason: Optional[str] = None) -> dict[str, Any]:
        return await self._http.request("POST", f"/v1/owner/reject/{tx_id}", json=_drop_none({"reason": reason}))

    async def add_channel(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._http.request("POST", "/v1/owner/notification-channels", json=body)

    async def list_channels(self) -> list[dict[str, Any]]:
        v = await self._http.request("GET", "/v1/owner/notification-channels")
        return list(v.get("channels", []))

    async def test_channel(self, channel_id: str) -> dict[str, Any]:
        return await self._http.request("POST", f"/v1/owner/notification-channels/{channel_id}/test", json={})

    async def activate_kill_switch(self, reason: str) -> dict[str, Any]:
        return await self._http.request("POST", "/v1/admin/kill-switch", json={"reason": reason})

    async def get_kill_switch(self) -> dict[str, Any]:
        return await self._http.request("GET", "/v1/admin/kill-switch")

    async def recover(self, owner: Optional[str] = None) -> dict[str, Any]:
        """A recovery step; ``owner`` is the owner payload (``WAIaaSOwnerClient.recover_payload``)."""
        headers = {"Authorization": f"Bearer {owner}"} if owner else None
        return await self._http.request("POST", "/v1/admin/recover", json={}, headers=headers)

    async def get_status(self) -> dict[str, Any]:
        return await self._http.request("GET", "/v1/admin/status")
