// The owner console (11-owner-console.md): review what agents want and sign with your own
// wallet. Reads use a read-only 15-minute token; every write is its own signature over text the
// daemon produced, shown verbatim before the wallet is asked.

import { html, render, useState, useEffect, useRef, useCallback } from "./preact-htm-3.1.1.js";
import { api, savedToken, saveToken, clearToken, whenSignedOut, whenLocked, ownerPayload } from "./api.js";
import { discover, connect, sign, sameAddress } from "./wallets.js";
import { groups, shortAddr, network, isoTime, localTime, parseTime, duration, describeError, units } from "./format.js";

// ------------------------------------------------------------------------------------ routing

function parseRoute() {
  const h = location.hash.replace(/^#/, "") || "/pending";
  const tx = h.match(/^\/tx\/([0-9a-fA-F-]{36})$/);
  if (tx) return { page: "tx", id: tx[1] };
  const page = { "/": "signin", "/pending": "pending", "/history": "history", "/agents": "agents", "/channels": "channels", "/kill-switch": "kill-switch" }[h];
  return { page: page || "pending" };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const on = () => setRoute(parseRoute());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

/** Polls `f` every `ms` while the tab is visible and `on` holds. */
function usePoll(f, ms, on, deps) {
  useEffect(() => {
    if (!on) return undefined;
    let stop = false;
    const tick = () => {
      if (!stop && document.visibilityState === "visible") f();
    };
    tick();
    const t = setInterval(tick, ms);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, deps);
}

// ------------------------------------------------------------------------------------ small parts

function Copy({ text, label }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch (_) {
      setDone(false);
    }
  };
  return html`<button type="button" class="secondary" onClick=${copy} aria-label=${"Copy " + (label || text)}>${done ? "Copied" : "Copy"}</button>`;
}

function Command({ text }) {
  return html`<div class="row"><code>${text}</code><${Copy} text=${text} label="the command" /></div>`;
}

function Address({ address, newRecipient }) {
  return html`<div>
    <div class="address"><span class="mono">${groups(address)}</span><${Copy} text=${address} label="the address" /></div>
    <div class="row note"><span class="mono">${shortAddr(address)}</span>${newRecipient ? html`<span class="badge strong">new recipient</span>` : null}</div>
  </div>`;
}

function NetworkBadge({ tx }) {
  const main = tx.network === "mainnet";
  return html`<span class=${"badge" + (main ? " strong" : "")}>${network(tx)}</span>`;
}

/** Time left until `expiresAt` on the daemon's clock (`offset` = server − local seconds). */
function Countdown({ tx, offset, onZero }) {
  const expires = parseTime(tx.expiresAt);
  const left = () => expires - (Date.now() / 1000 + offset);
  const [secs, setSecs] = useState(left());
  const [spoken, setSpoken] = useState("");
  useEffect(() => {
    const t = setInterval(() => {
      const s = left();
      setSecs(s);
      const whole = Math.ceil(s);
      if (whole === 60 || whole === 10 || (whole > 60 && whole % 60 === 0)) setSpoken(`${duration(whole)} left`);
      if (s <= 0) onZero && onZero();
    }, 1000);
    return () => clearInterval(t);
  }, [tx.id, tx.expiresAt, offset]);
  const word = tx.tier === "APPROVAL" ? "Approve by" : "Executes at";
  if (secs <= 0 && tx.tier === "DELAY") {
    return html`<p><strong>The cooldown ended at <time datetime=${tx.expiresAt}>${localTime(expires)}</time>; it executes now.</strong></p>`;
  }
  if (secs <= 0) {
    return html`<p><strong>Expired at <time datetime=${tx.expiresAt}>${localTime(expires)}</time></strong></p>`;
  }
  return html`<p>
    ${word} <time datetime=${tx.expiresAt}>${localTime(expires)}</time>${tx.tier === "DELAY" ? " unless rejected" : ""}: <strong>${duration(secs)}</strong> left
    <span class="sr-only" aria-live="polite">${spoken}</span>
  </p>`;
}

function ErrorBox({ error, onRetry }) {
  if (!error) return null;
  return html`<div class="error" role="alert"><p>${error}</p>${onRetry ? html`<button type="button" onClick=${onRetry}>Retry</button>` : null}</div>`;
}

// ------------------------------------------------------------------------------------ dialog

/** A modal dialog: focus moves in and is trapped; Escape cancels; focus returns on close. */
function Dialog({ title, children, onClose }) {
  const box = useRef(null);
  useEffect(() => {
    const opener = document.activeElement;
    const focusables = () => Array.from(box.current.querySelectorAll("button, textarea, input, a[href], select"));
    // The marked control (a reason field, or Cancel), never the signing button: Enter alone
    // must not start a signature.
    const first = box.current.querySelector("[data-initial-focus]") || focusables()[0];
    if (first) first.focus();
    const onKey = (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        onClose();
      } else if (e.key === "Tab") {
        const f = focusables();
        if (!f.length) return;
        const i = f.indexOf(document.activeElement);
        if (e.shiftKey && (i <= 0)) {
          e.preventDefault();
          f[f.length - 1].focus();
        } else if (!e.shiftKey && i === f.length - 1) {
          e.preventDefault();
          f[0].focus();
        }
      }
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      if (opener && opener.focus) opener.focus();
    };
  }, []);
  return html`<div class="backdrop">
    <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="dialog-title" ref=${box}>
      <h2 id="dialog-title">${title}</h2>
      ${children}
    </div>
  </div>`;
}

// ------------------------------------------------------------------------------------ signing

/** The wallet to sign with for the signed-in owner: the one used at sign-in, or found again. */
async function ownerWallet(state) {
  if (state.wallet) return state.wallet;
  const wanted = state.token.chain === "ethereum" ? "evm" : "solana";
  const found = (await discover()).filter((w) => w.kind === wanted);
  if (!found.length) throw { walletMessage: "no wallet of this chain is available in this browser" };
  return found.find((w) => w.id === state.token.walletId) || found[0];
}

function walletError(e) {
  if (e && (e.code === 4001 || (e.cause && e.cause.code === 4001))) return { walletCode: 4001 };
  if (e && (e.walletMessage || e.connected)) return e;
  if (e && e.status !== undefined) return e;
  return { walletMessage: (e && e.message) || String(e) };
}

/**
 * One write (11-owner-console.md §2.1): the daemon's message, the dialog (unless `direct`), the
 * owner's account check, the signature, the call. Resolves with the route's answer.
 */
function useWrite(state) {
  const [pending, setPending] = useState(null);
  const start = useCallback(async (w) => {
    const message = await api("/v1/owner/message", {
      method: "POST",
      body: { action: w.action, target: w.target, chain: state.token.chain, address: state.token.address },
    });
    setPending({ ...w, message });
  }, [state.token]);
  const confirm = useCallback(async (reason) => {
    const w = pending;
    const wallet = await ownerWallet(state);
    const accounts = await connect(wallet);
    const account = accounts.find((a) => sameAddress(state.token.chain, a, state.token.address));
    if (!account) throw { connected: accounts[0] || "no account", owner: state.token.address };
    state.wallet = wallet;
    const m = w.message;
    const signature = await sign(wallet, account, m.message);
    const payload = ownerPayload({ chain: state.token.chain, address: account, action: w.action, nonce: m.nonce, issuedAt: m.issuedAt, message: m.message, signature });
    // The reason is never part of what was signed; the kill switch's was typed before signing.
    const body = w.body ? w.body : w.withReason && reason ? { reason } : {};
    return api(w.path, { method: "POST", auth: payload, body });
  }, [pending, state]);
  return { pending, start, confirm, cancel: () => setPending(null) };
}

function SignDialog({ write, onDone, onError }) {
  const p = write.pending;
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  if (!p) return null;
  const go = async () => {
    setBusy(true);
    try {
      const r = await write.confirm(reason);
      write.cancel();
      onDone(r, p);
    } catch (e) {
      write.cancel();
      onError(walletError(e), p);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} title=${p.title} onClose=${() => write.cancel()}>
    <p>Your wallet (and a Ledger behind it) will be asked to sign exactly this text:</p>
    <pre class="signed mono">${p.message.message}</pre>
    ${p.withReason ? html`<label for="reason">Reason (optional, not signed)</label><textarea id="reason" rows="2" maxlength="500" data-initial-focus value=${reason} onInput=${(e) => setReason(e.target.value)}></textarea>` : null}
    ${p.chain === "solana" ? html`<p class="note">Or sign on a Ledger with the CLI: <code>${p.cli}</code></p>` : null}
    <div class="row">
      <button type="button" class=${p.danger ? "danger" : ""} disabled=${busy} onClick=${go}>${busy ? "Waiting for the wallet…" : p.confirmLabel}</button>
      <button type="button" class="secondary" data-initial-focus=${p.withReason ? undefined : true} onClick=${() => write.cancel()}>Cancel</button>
    </div>
  </${Dialog}>`;
}

// ------------------------------------------------------------------------------------ sign-in

function SignIn({ state, setState }) {
  const [wallets, setWallets] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    discover().then(setWallets);
  }, []);
  const signIn = async (wallet) => {
    setBusy(true);
    setError(null);
    let address = "";
    try {
      const chain = wallet.kind === "evm" ? "ethereum" : "solana";
      const accounts = await connect(wallet);
      address = accounts[0];
      const m = await api("/v1/owner/message", { method: "POST", body: { action: "console_login", target: `owner:${address}`, chain, address } });
      const signature = await sign(wallet, address, m.message);
      const payload = ownerPayload({ chain, address, action: "console_login", nonce: m.nonce, issuedAt: m.issuedAt, message: m.message, signature });
      const t = await api("/v1/owner/console/login", { method: "POST", auth: payload, body: {} });
      const token = { token: t.token, expiresAt: t.expiresAt, address: t.address, chain: t.chain, walletId: wallet.id };
      saveToken(token);
      setState({ ...state, token, wallet });
      if (location.hash === "#/" || !location.hash) location.hash = "#/pending";
    } catch (e) {
      setError(describeError(walletError(e), { signIn: true, address }));
    } finally {
      setBusy(false);
    }
  };
  if (wallets === null) return html`<main><h1>Owner console</h1><p>Looking for browser wallets…</p></main>`;
  if (!wallets.length) {
    return html`<main>
      <h1>No browser wallet found</h1>
      <div class="panel">
        <p>The console signs with a browser wallet (MetaMask, Rabby, Phantom, Solflare — a Ledger behind them works too). None announced itself in this browser.</p>
        <p>Without one, use the CLI on the daemon's machine:</p>
        <${Command} text="waiaas owner pending" />
        <${Command} text="waiaas owner approve <txId> --ledger" />
      </div>
    </main>`;
  }
  const group = (kind, title) => {
    const list = wallets.filter((w) => w.kind === kind);
    if (!list.length) return null;
    return html`<section class="panel" aria-labelledby=${"g-" + kind}>
      <h2 id=${"g-" + kind}>${title}</h2>
      <ul class="wallets">
        ${list.map((w) => html`<li>
          ${w.icon ? html`<img src=${w.icon} alt="" />` : null}
          <span>${w.name}</span>
          <button type="button" disabled=${busy} onClick=${() => signIn(w)}>Connect and sign in</button>
        </li>`)}
      </ul>
    </section>`;
  };
  return html`<main>
    <h1>Sign in as the owner</h1>
    <p>Connect your wallet and sign a read-only sign-in message. It lets this page show what your agents wait for, for 15 minutes; every action asks for its own signature.</p>
    <${ErrorBox} error=${error} />
    ${group("evm", "EVM wallets")}
    ${group("solana", "Solana wallets")}
  </main>`;
}

// ------------------------------------------------------------------------------------ cards

function Why({ tx }) {
  const d = tx.decision || {};
  // The reason names its policy type; older rows have only the policy id.
  const reason = d.reason || (d.policyId ? `${d.policyType || "policy"} ${d.policyId}` : "the default tiers");
  return html`<span>${tx.agentName} · ${tx.tier} — ${reason}</span>`;
}

function destination(tx) {
  if (tx.type === "APPROVE") return ["Spender", tx.spenderAddress];
  if (tx.type === "CONTRACT_CALL") return ["Contract", tx.contractAddress];
  return ["To", tx.toAddress];
}

function TxCard({ tx, offset, state, actions, detail }) {
  const [label, dest] = destination(tx);
  const [expired, setExpired] = useState(false);
  const secsLeft = parseTime(tx.expiresAt) - (Date.now() / 1000 + offset);
  const queued = tx.status === "QUEUED" && !expired && secsLeft > 0;
  return html`<article class=${"card" + (tx.network === "mainnet" ? " mainnet" : "")} aria-labelledby=${"t-" + tx.id}>
    <div class="row">
      <span class="amount" id=${"t-" + tx.id}>${tx.formatted}</span>
      <${NetworkBadge} tx=${tx} />
      <span class="badge">${tx.type}</span>
      <span class="badge">${tx.tier}</span>
    </div>
    <dl class="fields">
      <dt>${label}</dt><dd>${dest ? html`<${Address} address=${dest} newRecipient=${tx.newRecipient} />` : "—"}</dd>
      <dt>Why</dt><dd><${Why} tx=${tx} /></dd>
      <dt>Status</dt><dd>${tx.status}${tx.error ? " — " + tx.error : ""}</dd>
    </dl>
    ${tx.status === "QUEUED" ? html`<${Countdown} tx=${tx} offset=${offset} onZero=${() => setExpired(true)} />` : null}
    ${tx.status === "EXPIRED" && tx.expiresAt ? html`<p><strong>Expired at <time datetime=${tx.expiresAt}>${localTime(parseTime(tx.expiresAt))}</time></strong></p>` : null}
    <p>${queued ? "Your wallet (and a Ledger behind it) will show:" : "What an approval of it signs:"}</p>
    <p class="signed mono">${tx.summary}</p>
    ${queued && actions ? html`<div class="row">
      ${tx.tier === "APPROVAL" ? html`<button type="button" disabled=${secsLeft < 15} onClick=${() => actions.approve(tx)}>Approve</button>` : null}
      <button type="button" class="danger" onClick=${() => actions.reject(tx)}>Reject</button>
      ${detail ? null : html`<a href=${"#/tx/" + tx.id}>Details</a>`}
    </div>` : detail ? null : html`<a href=${"#/tx/" + tx.id}>Details</a>`}
  </article>`;
}

function useActions(state, write, after) {
  return {
    approve: (tx) => write.start({ action: "approve_tx", target: `tx:${tx.id}`, path: `/v1/owner/approve/${tx.id}`, title: "Approve this transaction", confirmLabel: "Sign and approve", chain: tx.chain, cli: `waiaas owner approve ${tx.id} --ledger`, tx }).catch(after.error),
    reject: (tx) => write.start({ action: "reject_tx", target: `tx:${tx.id}`, path: `/v1/owner/reject/${tx.id}`, title: "Reject this transaction", confirmLabel: "Sign and reject", danger: true, withReason: true, chain: tx.chain, cli: `waiaas owner reject ${tx.id}`, tx }).catch(after.error),
  };
}

// ------------------------------------------------------------------------------------ pages

function Pending({ state, locked }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [offset, setOffset] = useState(0);
  const [at, setAt] = useState(null);
  const write = useWrite(state);
  const load = useCallback(async () => {
    try {
      const r = await api("/v1/owner/me/pending", { auth: "token" });
      setOffset(parseTime(r.serverTime) - Date.now() / 1000);
      setData(r.transactions);
      setAt(new Date());
      setError(null);
    } catch (e) {
      if (e.status !== 401) setError(describeError(e));
    }
  }, []);
  usePoll(load, 10000, !locked, [locked]);
  const actions = useActions(state, write, { error: (e) => setError(describeError(walletError(e))) });
  const done = (_r, p) => {
    if (p.action === "approve_tx") location.hash = `#/tx/${p.tx.id}`;
    else load();
  };
  return html`<main>
    <h1>Waiting for you</h1>
    <${ErrorBox} error=${error} onRetry=${load} />
    ${data === null && !error ? html`<p>Loading…</p>` : null}
    ${data && !data.length ? html`<div class="panel"><p>Nothing is waiting for you.</p><p class="note">Last refreshed ${at ? at.toLocaleTimeString() : ""}.</p></div>` : null}
    ${(data || []).map((tx) => html`<${TxCard} key=${tx.id} tx=${tx} offset=${offset} state=${state} actions=${locked ? null : actions} />`)}
    <${SignDialog} write=${write} onDone=${done} onError=${(e) => setError(describeError(e, { address: state.token.address }))} />
  </main>`;
}

const TERMINAL = ["CONFIRMED", "FAILED", "CANCELLED", "EXPIRED"];

/** The fee in the chain's coin when the row's own symbol is that coin, always in base units. */
function feeText(tx) {
  if (tx.fee === null || tx.fee === undefined) return null;
  const native = ["TRANSFER", "CONTRACT_CALL", "BATCH"].includes(tx.type) ? tx.symbol : null;
  const decimals = tx.chain === "ethereum" ? 18 : 9;
  return native ? `${units(tx.fee, decimals, native)} (${tx.fee} base units)` : `${tx.fee} base units of the chain's coin`;
}

function TxDetail({ state, id, locked }) {
  const [tx, setTx] = useState(null);
  const [error, setError] = useState(null);
  const [offset, setOffset] = useState(0);
  const write = useWrite(state);
  const load = useCallback(async () => {
    try {
      const r = await api(`/v1/owner/me/transactions/${id}`, { auth: "token" });
      setOffset(parseTime(r.serverTime) - Date.now() / 1000);
      setTx(r);
      setError(null);
    } catch (e) {
      if (e.status !== 401) setError(describeError(e));
    }
  }, [id]);
  usePoll(load, 5000, !locked && !(tx && TERMINAL.includes(tx.status)), [id, locked, tx && tx.status]);
  const actions = useActions(state, write, { error: (e) => setError(describeError(walletError(e))) });
  if (!tx) return html`<main><h1>Transaction</h1><${ErrorBox} error=${error} onRetry=${load} />${error ? null : html`<p>Loading…</p>`}</main>`;
  const row = (k, v) => html`<dt>${k}</dt><dd>${v === null || v === undefined || v === "" ? "—" : v}</dd>`;
  return html`<main>
    <h1>Transaction <span class="mono">${shortAddr(tx.id)}</span></h1>
    <${ErrorBox} error=${error} onRetry=${load} />
    <${TxCard} tx=${tx} offset=${offset} state=${state} actions=${locked ? null : actions} detail=${true} />
    <section class="panel">
      <h2>Every field</h2>
      <dl class="fields">
        ${row("Id", html`<span class="mono">${tx.id}</span>`)}
        ${row("Agent", `${tx.agentName} (${tx.agentId})`)}
        ${row("Amount", `${tx.formatted} = ${tx.amount} base units${tx.decimals != null ? ` (${tx.decimals} decimals)` : ""}`)}
        ${row("Native amount", `${tx.nativeAmount} base units`)}
        ${row("Token", tx.tokenMint && html`<span class="mono">${tx.tokenMint}</span>`)}
        ${row("Method", tx.methodSignature)}
        ${row("Decision", tx.decision ? `${tx.decision.policyType || "no policy"}${tx.decision.downgraded ? ", downgraded from " + tx.decision.originalTier : ""}` : null)}
        ${row("Created", tx.createdAt)}
        ${row("Queued", tx.queuedAt)}
        ${row("Executed", tx.executedAt)}
        ${row("Hash", tx.txHash && html`<span class="mono">${tx.txHash}</span>`)}
        ${row("Fee", feeText(tx))}
        ${row("Block", tx.blockNumber)}
        ${row("Error", tx.error)}
      </dl>
      ${tx.approval && tx.approval.message ? html`<h2>The approval signed</h2><p class="note">By ${tx.approval.approvedBy} at ${tx.approval.approvedAt}</p><pre class="signed mono">${tx.approval.message}</pre>` : null}
      ${TERMINAL.includes(tx.status) ? html`<p class=${tx.status === "CONFIRMED" ? "ok" : "final"}>Final status: ${tx.status}</p>` : html`<p class="note">Refreshing every 5 s until it is final.</p>`}
    </section>
    <${SignDialog} write=${write} onDone=${() => load()} onError=${(e) => setError(describeError(e, { address: state.token.address }))} />
  </main>`;
}

function History({ state }) {
  const [agents, setAgents] = useState([]);
  const [filter, setFilter] = useState({ agentId: "", status: "" });
  const [pages, setPages] = useState([null]);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const cursor = pages[pages.length - 1];
  useEffect(() => {
    api("/v1/owner/me/agents", { auth: "token" }).then((r) => setAgents(r.agents)).catch(() => {});
  }, []);
  useEffect(() => {
    const q = new URLSearchParams({ limit: "20", order: "desc" });
    if (filter.agentId) q.set("agentId", filter.agentId);
    if (filter.status) q.set("status", filter.status);
    if (cursor) q.set("cursor", cursor);
    api(`/v1/owner/me/transactions?${q}`, { auth: "token" }).then((r) => { setData(r); setError(null); }).catch((e) => { if (e.status !== 401) setError(describeError(e)); });
  }, [filter, cursor]);
  const set = (k) => (e) => { setFilter({ ...filter, [k]: e.target.value }); setPages([null]); };
  return html`<main>
    <h1>History</h1>
    <div class="filters">
      <div><label for="f-agent">Agent</label><select id="f-agent" value=${filter.agentId} onChange=${set("agentId")}><option value="">All agents</option>${agents.map((a) => html`<option value=${a.id}>${a.name}</option>`)}</select></div>
      <div><label for="f-status">Status</label><select id="f-status" value=${filter.status} onChange=${set("status")}><option value="">Any status</option>${["PENDING", "QUEUED", "EXECUTING", "SUBMITTED", ...TERMINAL].map((s) => html`<option value=${s}>${s}</option>`)}</select></div>
    </div>
    <${ErrorBox} error=${error} />
    ${data ? html`<div class="table-wrap" tabindex="0" role="region" aria-label="Transactions"><table>
      <thead><tr><th scope="col">When</th><th scope="col">Agent</th><th scope="col">What</th><th scope="col">Status</th></tr></thead>
      <tbody>${data.transactions.map((t) => html`<tr><td>${t.createdAt}</td><td>${t.agentName}</td><td><a href=${"#/tx/" + t.id}>${t.formatted} ${t.type}</a></td><td>${t.status}</td></tr>`)}</tbody>
    </table></div>
    ${!data.transactions.length ? html`<p>No transactions.</p>` : null}
    <div class="row">
      ${pages.length > 1 ? html`<button type="button" class="secondary" onClick=${() => setPages(pages.slice(0, -1))}>Previous page</button>` : null}
      ${data.nextCursor ? html`<button type="button" class="secondary" onClick=${() => setPages([...pages, data.nextCursor])}>Next page</button>` : null}
    </div>` : html`<p>Loading…</p>`}
  </main>`;
}

function Agents({ state, locked }) {
  const [agents, setAgents] = useState(null);
  const [policies, setPolicies] = useState({});
  const [error, setError] = useState(null);
  const [note, setNote] = useState(null);
  const write = useWrite(state);
  const load = useCallback(async () => {
    try {
      const [a, p] = await Promise.all([api("/v1/owner/me/agents", { auth: "token" }), api("/v1/owner/me/policies", { auth: "token" })]);
      setAgents(a.agents);
      setPolicies(Object.fromEntries(p.agents.map((x) => [x.agentId, x.policies])));
    } catch (e) {
      if (e.status !== 401) setError(describeError(e));
    }
  }, []);
  useEffect(() => { load(); }, []);
  const verify = (a) => write.start({ action: "verify_owner", target: `agent:${a.id}`, path: `/v1/owner/agents/${a.id}/verify`, title: `Verify that you own ${a.name}`, confirmLabel: "Sign and verify", chain: a.chain, cli: `waiaas agent verify-owner ${a.name} --ledger` }).catch((e) => setError(describeError(walletError(e))));
  return html`<main>
    <h1>Your agents</h1>
    <${ErrorBox} error=${error} onRetry=${load} />
    ${note ? html`<p class="ok" role="status">${note}</p>` : null}
    ${(agents || []).map((a) => html`<section class="panel" aria-labelledby=${"a-" + a.id}>
      <h2 id=${"a-" + a.id}>${a.name}</h2>
      <dl class="fields">
        <dt>Chain</dt><dd>${a.chain} ${a.network}</dd>
        <dt>Address</dt><dd><${Address} address=${a.address} /></dd>
        <dt>Status</dt><dd>${a.status}</dd>
        <dt>Owner state</dt><dd>${a.ownerState}</dd>
      </dl>
      ${a.ownerState === "GRACE" && !locked ? html`<button type="button" onClick=${() => verify(a)}>Verify ownership</button>` : null}
      <h3>Policies that apply</h3>
      <div class="table-wrap" tabindex="0" role="region" aria-label=${"Policies of " + a.name}><table>
        <thead><tr><th scope="col">Type</th><th scope="col">Level</th><th scope="col">Priority</th><th scope="col">Enabled</th><th scope="col">In effect</th><th scope="col">Rules</th></tr></thead>
        <tbody>${(policies[a.id] || []).map((p) => html`<tr><td>${p.type}</td><td>${p.level}</td><td>${p.priority}</td><td>${p.enabled ? "yes" : "no"}</td><td>${p.effective ? "yes" : "no"}</td><td><code>${JSON.stringify(p.rules)}</code></td></tr>`)}</tbody>
      </table></div>
      <p class="note">Changing policies needs the master password, on the daemon's machine:</p>
      <${Command} text=${`waiaas policy add --agent ${a.name} --file policy.json`} />
      <${Command} text=${`waiaas agent suspend ${a.name}`} />
      <${Command} text=${`waiaas owner withdraw --agent ${a.name}`} />
    </section>`)}
    <${SignDialog} write=${write} onDone=${() => { setNote("Ownership verified."); load(); }} onError=${(e) => setError(describeError(e, { address: state.token.address }))} />
  </main>`;
}

function Channels() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api("/v1/owner/me/channels", { auth: "token" }).then(setData).catch((e) => { if (e.status !== 401) setError(describeError(e)); });
  }, []);
  return html`<main>
    <h1>Notification channels</h1>
    <${ErrorBox} error=${error} />
    ${data ? html`<p>Notifications are ${data.notificationsEnabled ? "on" : "off"}; at least ${data.minChannels} channel(s) must be enabled for tiers above INSTANT.</p>
      <div class="table-wrap" tabindex="0" role="region" aria-label="Channels"><table>
        <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Priority</th><th scope="col">Enabled</th><th scope="col">Last health check</th></tr></thead>
        <tbody>${data.channels.map((c) => html`<tr><td>${c.name}</td><td>${c.type}</td><td>${c.priority}</td><td>${c.enabled ? "yes" : "no"}</td><td>${c.lastHealthStatus || "—"}${c.lastHealthCheck ? " at " + c.lastHealthCheck : ""}</td></tr>`)}</tbody>
      </table></div>
      <p class="note">Adding a channel needs the master password:</p>
      <${Command} text="waiaas channel add --file channel.json" />` : html`<p>Loading…</p>`}
  </main>`;
}

function KillSwitch({ state, health, refreshHealth }) {
  const [reason, setReason] = useState("");
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const write = useWrite(state);
  const ks = (health && health.killSwitch) || {};
  if (ks.status && ks.status !== "NORMAL") return html`<main><h1>Kill switch</h1><${Locked} ks=${ks} /></main>`;
  const valid = reason.trim().length >= 1 && reason.length <= 500;
  const start = () => {
    setConfirming(false);
    write.start({ action: "kill_switch", target: "system", path: "/v1/owner/kill-switch", title: "Activate the kill switch", confirmLabel: "Sign and stop everything", danger: true, chain: state.token.chain, cli: "waiaas kill-switch activate --reason …", body: { reason: reason.trim() } }).catch((e) => setError(describeError(walletError(e))));
  };
  return html`<main>
    <h1>Kill switch</h1>
    <div class="panel">
      <p>Activating it stops every agent at once: all sessions are revoked, queued transactions are cancelled, agents are suspended and the keystore is locked. Recovery needs the master password on the daemon's machine (and your signature).</p>
      <label for="ks-reason">Reason (1–500 characters)</label>
      <input id="ks-reason" type="text" maxlength="500" value=${reason} onInput=${(e) => setReason(e.target.value)} />
      <p><button type="button" class="danger" disabled=${!valid} onClick=${() => setConfirming(true)}>Activate the kill switch</button></p>
    </div>
    <${ErrorBox} error=${error} />
    ${confirming ? html`<${Dialog} title="Stop all agents?" onClose=${() => setConfirming(false)}>
      <p>This stops every agent of this daemon now. Only the operator can recover it, with the master password.</p>
      <div class="row"><button type="button" class="danger" onClick=${start}>Yes, continue to sign</button><button type="button" class="secondary" data-initial-focus onClick=${() => setConfirming(false)}>Cancel</button></div>
    </${Dialog}>` : null}
    <${SignDialog} write=${write} onDone=${() => refreshHealth()} onError=${(e) => setError(describeError(e, { address: state.token.address }))} />
  </main>`;
}

function Locked({ ks }) {
  return html`<div class="banner" role="status">
    <p><strong>Kill switch ${ks.status}</strong>${ks.activatedAt ? html` since <time datetime=${ks.activatedAt}>${localTime(parseTime(ks.activatedAt))}</time>` : null}${ks.reason ? ` — ${ks.reason}` : ""}.</p>
    <p>No agent can act until the operator recovers the daemon, on its machine:</p>
    <${Command} text="waiaas kill-switch recover" />
  </div>`;
}

// ------------------------------------------------------------------------------------ shell

function Header({ state, current, onSignOut }) {
  const [, tick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => tick((x) => x + 1), 30000);
    return () => clearInterval(t);
  }, []);
  const t = state.token;
  const minutes = t ? Math.max(0, Math.ceil((parseTime(t.expiresAt) - Date.now() / 1000) / 60)) : 0;
  const link = (page, hash, text) => html`<a href=${hash} aria-current=${current === page ? "page" : undefined}>${text}</a>`;
  return html`<header class="top"><div class="bar">
    <span class="brand">WAIaaS owner console</span>
    ${t ? html`<nav aria-label="Pages">
      ${link("pending", "#/pending", "Waiting")}
      ${link("history", "#/history", "History")}
      ${link("agents", "#/agents", "Agents")}
      ${link("channels", "#/channels", "Channels")}
      ${link("kill-switch", "#/kill-switch", "Kill switch")}
    </nav>
    <span class="who">${shortAddr(t.address)} · ${t.chain} · ${minutes} min left</span>
    <button type="button" onClick=${onSignOut}>Sign out</button>` : null}
  </div></header>`;
}

function App() {
  const route = useRoute();
  const [state, setState] = useState({ token: savedToken(), wallet: null });
  const [health, setHealth] = useState(null);
  const refreshHealth = useCallback(async () => {
    try {
      setHealth(await api("/health"));
    } catch (_) {}
  }, []);
  useEffect(() => {
    refreshHealth();
    const t = setInterval(refreshHealth, 30000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    whenSignedOut(() => setState({ token: null, wallet: null }));
    whenLocked(() => refreshHealth());
  }, []);
  const signOut = () => {
    clearToken();
    setState({ token: null, wallet: null });
  };
  const ks = health && health.killSwitch;
  const locked = !!(ks && ks.status && ks.status !== "NORMAL");
  let page;
  // Locked: every read and action is refused until the operator recovers, so the page shows
  // only that (and no sign-in, whose message route is locked too).
  if (locked) page = html`<main><h1>Kill switch</h1><${Locked} ks=${ks} /></main>`;
  else if (!state.token) page = html`<${SignIn} state=${state} setState=${setState} />`;
  else if (route.page === "tx") page = html`<${TxDetail} state=${state} id=${route.id} locked=${locked} />`;
  else if (route.page === "history") page = html`<${History} state=${state} />`;
  else if (route.page === "agents") page = html`<${Agents} state=${state} locked=${locked} />`;
  else if (route.page === "channels") page = html`<${Channels} />`;
  else if (route.page === "kill-switch") page = html`<${KillSwitch} state=${state} health=${health} refreshHealth=${refreshHealth} />`;
  else page = html`<${Pending} state=${state} locked=${locked} />`;
  // The nav marks the page shown: while locked that is the kill switch, whatever the address.
  const current = locked ? "kill-switch" : route.page;
  return html`<${Header} state=${state} current=${current} onSignOut=${signOut} />
    ${page}`;
}

render(html`<${App} />`, document.getElementById("app"));
