// Calls to the daemon: same origin, no cookies, no cache. The read-only owner token lives in
// sessionStorage (never localStorage or a cookie: cookies are shared across localhost ports).

const KEY = "waiaas.ownerToken";

export function savedToken() {
  try {
    const t = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return t && t.token ? t : null;
  } catch (_) {
    return null;
  }
}

export function saveToken(t) {
  sessionStorage.setItem(KEY, JSON.stringify(t));
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

/** An answer the daemon refused: its envelope, or a transport failure (`status` 0). */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.message) || "request failed");
    this.status = status;
    this.code = body && body.code;
    this.details = (body && body.details) || {};
    this.retryAfter = retryAfter;
  }
}

let onSignedOut = () => {};
export function whenSignedOut(f) {
  onSignedOut = f;
}

let onLocked = () => {};
/** Called when any answer is 503 SYSTEM_LOCKED: the page re-reads the kill switch state. */
export function whenLocked(f) {
  onLocked = f;
}

/**
 * One call. `auth`: "token" sends the owner token, a string sends it as the Authorization value
 * (an owner signature payload), nothing sends nothing.
 */
export async function api(path, { method = "GET", body, auth } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth === "token") {
    const t = savedToken();
    if (t) headers.Authorization = "Bearer " + t.token;
  } else if (typeof auth === "string") {
    headers.Authorization = "Bearer " + auth;
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (_) {
    throw new ApiError(0, { code: "NO_ANSWER", message: "no answer" });
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, json, Number(res.headers.get("Retry-After")) || undefined);
    if (res.status === 401 && auth === "token") {
      clearToken();
      onSignedOut();
    }
    if (res.status === 503 && err.code === "SYSTEM_LOCKED") onLocked();
    throw err;
  }
  return json;
}

/** The owner payload of 04-auth.md §7.1, base64url without padding. */
export function ownerPayload({ chain, address, action, nonce, issuedAt, message, signature }) {
  const json = JSON.stringify({ chain, address, action, nonce, timestamp: issuedAt, message, signature });
  const bytes = new TextEncoder().encode(json);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
