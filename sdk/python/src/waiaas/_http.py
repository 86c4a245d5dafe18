"""The transport every client shares: JSON over httpx, the error envelope, and the retry rule.

Retries happen only for retryable errors (the envelope's ``retryable``, or 429/502/503/504 with
no body) with 1 s, 2 s, 4 s backoff or the server's ``Retry-After``. A write is retried only
when it carries an idempotency key, which stays the same across its retries, so the daemon
executes it at most once.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import httpx

from .errors import WAIaaSError

DEFAULT_BASE_URL = "http://127.0.0.1:3100"


def _retry_after(resp: httpx.Response) -> Optional[float]:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Transport:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        max_retries: int,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        sleep=asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.max_retries = max_retries
        self._sleep = sleep
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Optional[dict[str, Any]] = None,
        headers: Optional[dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Any:
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        # A write without an idempotency key is never retried: it might have executed.
        may_retry = method == "GET" or idempotency_key is not None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                resp = await self._http.request(method, path, json=json, params=query, headers=all_headers)
            except httpx.HTTPError as e:
                err = WAIaaSError("CONNECTION_ERROR", f"cannot reach the daemon at {self.base_url}: {e}", retryable=True)
            else:
                if resp.status_code < 400:
                    return resp.json() if resp.content else None
                try:
                    body = resp.json()
                except ValueError:
                    body = None
                err = WAIaaSError.from_response(resp.status_code, body, _retry_after(resp))
            if not (err.retryable and may_retry and attempt < self.max_retries):
                raise err
            await self._sleep(err.retry_after if err.retry_after is not None else 2.0**attempt)
            attempt += 1
