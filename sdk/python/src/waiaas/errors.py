"""The error every client raises: the daemon's error envelope (09-api.md §2), or a transport
failure as ``CONNECTION_ERROR`` (retryable)."""

from __future__ import annotations

from typing import Any


class WAIaaSError(Exception):
    """An API error. ``code`` is the stable machine code (``POLICY_DENIED``, ``SESSION_REVOKED``, …)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable
        self.details = details or {}
        self.request_id = request_id
        self.hint = hint
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, status: int, body: Any, retry_after: float | None = None) -> "WAIaaSError":
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            return cls(
                code=body["code"],
                message=str(body.get("message", "")),
                status=status,
                retryable=bool(body.get("retryable", False)),
                details=body.get("details") or {},
                request_id=body.get("requestId"),
                hint=body.get("hint"),
                retry_after=retry_after,
            )
        # No envelope (a proxy in between): 429/502/503/504 are worth retrying.
        return cls(
            code=f"HTTP_{status}",
            message=f"HTTP {status} without an error body",
            status=status,
            retryable=status in (429, 502, 503, 504),
            retry_after=retry_after,
        )

    def __repr__(self) -> str:
        return f"WAIaaSError(code={self.code!r}, status={self.status!r}, retryable={self.retryable!r})"
