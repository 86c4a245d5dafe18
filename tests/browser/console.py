#!/usr/bin/env python3
"""Drives the owner console in Debian's chromium (11-owner-console.md §7).

    console.py <scenario> <config.json>

`tests/console.rs` starts the daemon, anvil / the Solana node and the rows, writes the config and
runs one scenario; this script drives the page as an owner would and asserts what the page
shows and what the wallet was asked to sign. The last stdout line is a JSON report (what was
signed, what the daemon answered) that the Rust side checks against the daemon, the audit log
and the chain. Exit status 0 means every check here passed.

The wallets are injected with `context.add_init_script` (outside the page's CSP, which stays
enforced: `bypass_csp` is off): an EIP-1193 provider announced through EIP-6963 whose
`personal_sign` is done here by eth-account, and a Wallet Standard wallet whose
`solana:signMessage` is done here by solders (PyNaCl verifies). Every scenario fails on a
`securitypolicyviolation`, a CSP or Trusted Types console message, a page error, or a request to
any origin but the daemon's. Every state is screenshot at 1280x800 and 390x844 and checked with
axe-core (no serious or critical violation, no horizontal scrolling).
"""

import json
import pathlib
import sys
import time
import urllib.request

import nacl.signing
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import sync_playwright
from solders.keypair import Keypair

SIZES = [(1280, 800), (390, 844)]
WAIT_MS = 20_000

# A 1x1 SVG in a data: URL, the only kind of wallet icon the console shows.
ICON = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAxIDEiPjxyZWN0IHdpZHRoPSIxIiBoZWlnaHQ9IjEiIGZpbGw9IiMzMzMiLz48L3N2Zz4="

# Reports a CSP violation to Python before any page script runs.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__waiaasReport("securitypolicyviolation", `${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
});
"""

# An EIP-1193 provider, announced through EIP-6963 and as window.ethereum; every request is
# answered by Python (`__waiaasEvm`), which decides accounts, refusals and signatures.
EVM_WALLET = """
(() => {
  const call = async (method, params) => {
    const r = await window.__waiaasEvm(method, params || []);
    if (r.error) { const e = new Error(r.error.message); e.code = r.error.code; throw e; }
    return r.result;
  };
  const provider = {
    request: ({ method, params }) => call(method, params),
    on() { return provider; },
    removeListener() { return provider; },
  };
  const info = Object.freeze({ uuid: "3b9d3c1e-7d1a-4c2e-9f5e-0c8a2f6b1d11", name: "Test EVM Wallet", icon: "%ICON%", rdns: "test.waiaas.evm" });
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
  Object.defineProperty(window, "ethereum", { value: provider, configurable: true });
})();
"""

# A Wallet Standard wallet (the register-wallet / app-ready handshake) with standard:connect
# and solana:signMessage, signing through Python (`__waiaasSol`).
SOL_WALLET = """
(() => {
  const address = "%ADDRESS%";
  const account = Object.freeze({ address, publicKey: new Uint8Array(%PUBKEY%), chains: ["solana:devnet", "solana:testnet", "solana:mainnet"], features: ["solana:signMessage"] });
  let connected = false;
  const wallet = {
    version: "1.0.0",
    name: "Test Solana Wallet",
    icon: "%ICON%",
    chains: ["solana:devnet", "solana:testnet", "solana:mainnet"],
    get accounts() { return connected ? [account] : []; },
    features: {
      "standard:connect": { version: "1.0.0", connect: async () => { connected = true; return { accounts: [account] }; } },
      "standard:events": { version: "1.0.0", on: () => () => {} },
      "solana:signMessage": {
        version: "1.0.0",
        signMessage: async (...inputs) => {
          const out = [];
          for (const { account: a, message } of inputs) {
            const r = await window.__waiaasSol(a.address, Array.from(message));
            if (r.error) { const e = new Error(r.error.message); e.code = r.error.code; throw e; }
            out.push({ signedMessage: message, signature: new Uint8Array(r.result) });
          }
          return out;
        },
      },
    },
  };
  const register = (api) => api.register(wallet);
  window.addEventListener("wallet-standard:app-ready", (e) => register(e.detail));
  window.dispatchEvent(new CustomEvent("wallet-standard:register-wallet", { detail: register }));
})();
"""


class Failed(Exception):
    pass


class Run:
    """One scenario: the browser, the wallets' state and everything observed."""

    def __init__(self, scenario, cfg):
        self.scenario = scenario
        self.cfg = cfg
        self.base = cfg["base"]
        self.out = pathlib.Path(cfg["artifacts"]) / scenario
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self.out.glob("*"):
            old.unlink()
        self.failures = []
        self.signed = []  # every text a wallet signed: {chain, account, text}
        self.refused = []  # texts a wallet was asked to sign and refused (4001)
        self.messages = []  # the daemon's answers to POST /v1/owner/message
        self.answers = []  # other JSON answers the page got: {method, path, status, body}
        self.foreign = []  # requests to any other origin (aborted)
        self.evm_account = cfg.get("evm", {}).get("address")
        self.evm_mode = "sign"  # or "refuse"
        self.shots = []
        self.pages = []

    # --- the browser --------------------------------------------------------------------------

    def __enter__(self):
        self.pw = sync_playwright().start()
        self.browser = self.pw.chromium.launch(
            executable_path=self.cfg["chromium"],
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        return self

    def __exit__(self, *exc):
        self.browser.close()
        self.pw.stop()
        return False

    def page(self, wallets=("evm",)):
        """A fresh context (its own sessionStorage) with the listeners and the wallets."""
        ctx = self.browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=False)
        ctx.route("**/*", self._route)
        ctx.expose_binding("__waiaasReport", lambda _src, kind, text: self.failures.append(f"{kind}: {text}"))
        ctx.add_init_script(script=CSP_LISTENER)
        ctx.add_init_script(path=self.cfg["axe"])
        if "evm" in wallets:
            ctx.expose_binding("__waiaasEvm", self._evm)
            ctx.add_init_script(script=EVM_WALLET.replace("%ICON%", ICON))
        if "solana" in wallets:
            sol = self.cfg["sol"]
            kp = Keypair.from_seed(bytes.fromhex(sol["seed"]))
            ctx.expose_binding("__waiaasSol", self._sol)
            script = (
                SOL_WALLET.replace("%ADDRESS%", str(kp.pubkey()))
                .replace("%PUBKEY%", json.dumps(list(bytes(kp.pubkey()))))
                .replace("%ICON%", ICON)
            )
            ctx.add_init_script(script=script)
        page = ctx.new_page()
        self.pages.append(page)
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda e: self.failures.append(f"pageerror: {e}"))
        page.on("console", self._console)
        page.on("response", self._response)
        return page

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base + "/") or url == self.base:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def _console(self, msg):
        text = msg.text
        if "Content Security Policy" in text or "Trusted Type" in text or "TrustedHTML" in text:
            self.failures.append(f"console: {text}")

    def _response(self, resp):
        path = resp.url[len(self.base):] if resp.url.startswith(self.base) else resp.url
        if not path.startswith("/v1/") or resp.request.method != "POST":
            return
        try:
            body = resp.json()
        except Exception:  # noqa: BLE001 - an empty or non-JSON answer
            body = None
        if path == "/v1/owner/message" and resp.status == 200:
            self.messages.append(body)
        else:
            self.answers.append({"method": "POST", "path": path, "status": resp.status, "body": body})

    def wait_answer(self, page, path, timeout_ms=5000):
        """The last answer to a POST on `path`, waiting for its response event to arrive."""
        for _ in range(timeout_ms // 100):
            found = [a for a in self.answers if a["path"] == path]
            if found:
                return found[-1]
            page.wait_for_timeout(100)
        return {"status": None, "body": None, "path": path, "note": "no answer recorded"}

    # --- the wallets --------------------------------------------------------------------------

    def _evm(self, _src, method, params):
        if method in ("eth_requestAccounts", "eth_accounts"):
            return {"result": [self.evm_account]}
        if method == "eth_chainId":
            return {"result": "0x7a69"}
        if method == "personal_sign":
            data, account = params
            text = bytes.fromhex(data[2:]).decode("utf-8")
            if self.evm_mode == "refuse":
                self.refused.append(text)
                return {"error": {"code": 4001, "message": "User rejected the request."}}
            key = self.cfg["keys"].get(account.lower())
            if key is None:
                return {"error": {"code": 4100, "message": "unknown account"}}
            sig = Account.sign_message(encode_defunct(text=text), private_key=key).signature
            self.signed.append({"chain": "ethereum", "account": account, "text": text})
            return {"result": "0x" + bytes(sig).hex()}
        return {"error": {"code": 4200, "message": f"{method} is not supported"}}

    def _sol(self, _src, address, message):
        kp = Keypair.from_seed(bytes.fromhex(self.cfg["sol"]["seed"]))
        if address != str(kp.pubkey()):
            return {"error": {"code": 4100, "message": "unknown account"}}
        data = bytes(message)
        sig = bytes(kp.sign_message(data))
        nacl.signing.VerifyKey(bytes(kp.pubkey())).verify(data, sig)  # PyNaCl agrees
        self.signed.append({"chain": "solana", "account": address, "text": data.decode("utf-8")})
        return {"result": list(sig)}

    # --- checks ---------------------------------------------------------------------------------

    def check(self, cond, what):
        if not cond:
            raise Failed(what)

    def snap(self, page, state):
        """Screenshots and axe at both sizes; no horizontal scrolling."""
        for w, h in SIZES:
            page.set_viewport_size({"width": w, "height": h})
            page.wait_for_timeout(200)
            name = f"{state}-{w}x{h}"
            page.screenshot(path=str(self.out / f"{name}.png"), full_page=True)
            violations = page.evaluate(
                """async () => {
                  const r = await axe.run(document, { resultTypes: ["violations"] });
                  return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
                }"""
            )
            (self.out / f"{name}.axe.json").write_text(json.dumps(violations, indent=1))
            bad = [v for v in violations if v["impact"] in ("serious", "critical")]
            if bad:
                self.failures.append(f"axe {name}: {bad}")
            if page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"):
                self.failures.append(f"{name}: horizontal scrolling")
            self.shots.append(name)
        page.set_viewport_size({"width": 1280, "height": 800})

    def text(self, page):
        return page.inner_text("body")

    def wait_text(self, page, needle, timeout=WAIT_MS):
        deadline = time.time() + timeout / 1000
        while time.time() < deadline:
            if needle in self.text(page):
                return
            page.wait_for_timeout(100)
        raise Failed(f"the page never showed {needle!r}; it shows:\n{self.text(page)}")

    # --- the daemon (the test's own calls, not the page's) --------------------------------------

    def daemon(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, method=method, data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        req.add_header("X-Master-Password", self.cfg["master"])
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")

    def advance(self, seconds):
        self.daemon("POST", "/v1/admin/dev/clock", {"advanceSeconds": seconds})

    def server_now(self):
        h = self.daemon("GET", "/health")
        return iso_secs(h["timestamp"])

    # --- flows ------------------------------------------------------------------------------------

    def sign_in(self, page, wallet="Test EVM Wallet"):
        """From the sign-in page: connect `wallet` and sign the console_login message."""
        page.wait_for_selector("text=Sign in as the owner")
        n = len(self.signed)
        page.locator("li", has_text=wallet).get_by_role("button", name="Connect and sign in").click()
        page.wait_for_selector("header nav")
        self.check(len(self.signed) == n + 1, "sign-in asked for exactly one signature")
        self.check("console_login" in self.signed[-1]["text"], "the sign-in text is a console_login")
        self.check(self.signed[-1]["text"] == self.messages[-1]["message"], "sign-in signed the daemon's text")

    def card(self, page, tx):
        return page.locator(f"article[aria-labelledby='t-{tx}']")

    def report(self):
        return {
            "signed": self.signed,
            "refused": self.refused,
            "messages": self.messages,
            "answers": self.answers,
            "foreign": self.foreign,
            "failures": self.failures,
            "shots": self.shots,
        }


def iso_secs(s):
    return int(time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)


def groups(addr):
    body = addr[2:] if addr.startswith("0x") else addr
    parts = " ".join(body[i : i + 4] for i in range(0, len(body), 4))
    return ("0x " + parts) if addr.startswith("0x") else parts


def short(addr):
    return addr if len(addr) <= 13 else addr[:6] + "..." + addr[-4:]


# ==================================================================================== scenarios


def evm_approve(r):
    """ACC-264, ACC-265: sign in, read the 10 ETH card, approve, follow it to CONFIRMED; every
    page at both sizes."""
    c = r.cfg
    page = r.page()
    page.goto(f"{r.base}/owner/#/pending")
    page.wait_for_selector("text=Sign in as the owner")
    r.snap(page, "signin")
    r.sign_in(page)
    tx = c["approvalTx"]
    card = r.card(page, tx)
    card.wait_for()
    body = card.inner_text()
    for needle in [
        "10 ETH",
        groups(c["to"]),
        short(c["to"]),
        "Ethereum testnet · chain 31337",
        c["agentName"],
        "APPROVAL",
        "SPENDING_LIMIT (agent): 10 ETH is above delay_max 5 ETH",
        "Approve by",
        c["summary"],
        "new recipient",
    ]:
        r.check(needle in body, f"the card shows {needle!r}:\n{body}")
    r.check(card.locator("time[datetime]").count() >= 1, "the deadline is a <time datetime>")
    r.check(r.card(page, c["delayTx"]).inner_text().count("Executes at") == 1, "the DELAY card says when it executes")
    r.snap(page, "pending")

    card.get_by_role("button", name="Approve").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    shown = dialog.locator("pre").inner_text()
    r.check(shown == r.messages[-1]["message"], "the dialog shows the daemon's message verbatim")
    r.check(c["summary"] in shown, "the message carries the card's summary")
    r.snap(page, "approve-dialog")
    dialog.get_by_role("button", name="Sign and approve").click()
    page.wait_for_url(f"**/owner/#/tx/{tx}")
    r.wait_text(page, "Final status: CONFIRMED", timeout=40_000)
    r.check(r.signed[-1]["text"] == r.messages[-1]["message"], "the wallet signed exactly the daemon's text")
    detail = r.text(page)
    r.check("The approval signed" in detail and r.messages[-1]["message"].split("\n")[0] in detail, "the detail shows the signed message")
    r.snap(page, "tx-confirmed")
    for route, state, needle in [
        ("#/history", "history", "History"),
        ("#/agents", "agents", "Policies that apply"),
        ("#/channels", "channels", "Notification channels"),
        ("#/kill-switch", "kill-switch", "Activate the kill switch"),
    ]:
        page.goto(f"{r.base}/owner/{route}")
        r.wait_text(page, needle)
        page.wait_for_timeout(300)
        r.snap(page, state)
    page.goto(f"{r.base}/owner/#/history")
    r.wait_text(page, "CONFIRMED")
    page.goto(f"{r.base}/owner/#/agents")
    r.wait_text(page, "SPENDING_LIMIT")
    r.check(c["otherAgentName"] not in r.text(page), "another owner's agent is not listed")


def keyboard(r):
    """ACC-274: sign in and approve with the keyboard alone, a visible focus ring on every
    control reached, the dialog trapping focus and Escape returning it."""
    c = r.cfg
    page = r.page()
    page.goto(f"{r.base}/owner/")
    page.wait_for_selector("text=Sign in as the owner")

    def focused():
        return page.evaluate(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
              return { tag: e.tagName, text: (e.innerText || e.value || '').trim(), outline: s.outlineStyle,
                       width: parseFloat(s.outlineWidth), inDialog: !!e.closest('[role=dialog]') }; }"""
        )

    def tab_to(label, shift=False, limit=40):
        for _ in range(limit):
            page.keyboard.press("Shift+Tab" if shift else "Tab")
            f = focused()
            if f["tag"] in ("BUTTON", "A", "INPUT", "TEXTAREA", "SELECT"):
                r.check(f["outline"] != "none" and f["width"] >= 2, f"a visible focus outline on {f}")
            if f["text"] == label:
                return f
        raise Failed(f"Tab never reached {label!r}")

    tab_to("Connect and sign in")
    page.keyboard.press("Enter")
    page.wait_for_selector("header nav")
    r.card(page, c["keyboardTx"]).wait_for()
    # Find the Approve button of this transaction's card.
    for _ in range(60):
        page.keyboard.press("Tab")
        here = page.evaluate(
            f"() => {{ const e = document.activeElement; return e.innerText === 'Approve' && !!e.closest(\"article[aria-labelledby='t-{c['keyboardTx']}']\"); }}"
        )
        if here:
            break
    else:
        raise Failed("Tab never reached the card's Approve button")
    page.keyboard.press("Space")
    page.get_by_role("dialog").wait_for()
    r.check(focused()["inDialog"], "focus moved into the dialog")
    for _ in range(6):
        page.keyboard.press("Tab")
        r.check(focused()["inDialog"], "Tab stays in the dialog")
    for _ in range(6):
        page.keyboard.press("Shift+Tab")
        r.check(focused()["inDialog"], "Shift+Tab stays in the dialog")
    page.keyboard.press("Escape")
    r.check(page.get_by_role("dialog").count() == 0, "Escape closed the dialog")
    r.check(focused()["text"] == "Approve", "focus returned to Approve")
    page.keyboard.press("Space")
    page.get_by_role("dialog").wait_for()
    tab_to("Sign and approve", shift=True, limit=6)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/owner/#/tx/{c['keyboardTx']}")
    r.wait_text(page, "Final status: CONFIRMED", timeout=40_000)


def reject(r):
    """ACC-266: reject with a reason; the card goes, nothing was sent."""
    c = r.cfg
    page = r.page()
    page.goto(f"{r.base}/owner/")
    r.sign_in(page)
    card = r.card(page, c["rejectTx"])
    card.wait_for()
    card.get_by_role("button", name="Reject").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    r.check("reject_tx" in dialog.locator("pre").inner_text(), "the dialog shows a reject_tx message")
    dialog.get_by_label("Reason (optional, not signed)").fill("not today")
    r.snap(page, "reject-dialog")
    dialog.get_by_role("button", name="Sign and reject").click()
    card.wait_for(state="detached")
    r.check(r.signed[-1]["text"] == r.messages[-1]["message"], "the wallet signed the daemon's reject_tx text")
    answer = r.wait_answer(page, f"/v1/owner/reject/{c['rejectTx']}")
    r.check(answer["status"] == 200, f"the reject answer: {answer}")


def refusals(r):
    """ACC-273: no wallet; a wallet answering 4001; another connected account; a row past its
    deadline and a signature that arrives after it (410, in words)."""
    c = r.cfg
    bare = r.page(wallets=())
    bare.goto(f"{r.base}/owner/")
    r.wait_text(bare, "No browser wallet found")
    for cmd in ["waiaas owner pending", "waiaas owner approve <txId> --ledger"]:
        r.check(cmd in r.text(bare), f"the no-wallet page names {cmd}")
    r.snap(bare, "no-wallet")

    page = r.page()
    page.goto(f"{r.base}/owner/")
    r.sign_in(page)
    card = r.card(page, c["refuseTx"])
    card.wait_for()
    r.evm_mode = "refuse"
    card.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_role("button", name="Sign and approve").click()
    r.wait_text(page, "Cancelled in the wallet")
    r.check(len(r.refused) == 1, "the wallet was asked once and refused")
    r.snap(page, "error")
    r.evm_mode = "sign"

    r.evm_account = c["otherAddress"]
    signed = len(r.signed)
    card.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_role("button", name="Sign and approve").click()
    r.wait_text(page, f"Connected {c['otherAddress']}; the owner is {c['evm']['address']}.")
    r.check(len(r.signed) == signed, "nothing was signed for another account")
    r.evm_account = c["evm"]["address"]

    # The deadline: move the daemon's clock 10 s (so the message is younger than the row), open
    # the dialog, then move it past the row's deadline but within the message's 300 s.
    r.advance(10)
    late = r.card(page, c["lateTx"])
    page.reload()
    late.wait_for()
    late.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").wait_for()
    now = r.server_now()
    r.advance(iso_secs(c["lateExpiresAt"]) - now + 1)
    page.get_by_role("dialog").get_by_role("button", name="Sign and approve").click()
    r.wait_text(page, "expired before your signature arrived")
    # The page can render the answer before Playwright hands its response event to us.
    answer = r.wait_answer(page, f"/v1/owner/approve/{c['lateTx']}")
    r.check(answer["status"] == 410 and (answer["body"] or {}).get("code") == "TX_EXPIRED", f"410: {answer}")
    # The other row of that window is past its deadline too (QUEUED until the timeout worker
    # runs, then EXPIRED): either way its page says so and offers no Approve.
    page.goto(f"{r.base}/owner/#/tx/{c['staleTx']}")
    stale = r.card(page, c["staleTx"])
    stale.wait_for()
    r.wait_text(page, "Expired at")
    r.check(stale.get_by_role("button", name="Approve").count() == 0, "no Approve button past the deadline")
    r.snap(page, "expired")


def sol_approve(r):
    """ACC-271: a Solana owner signs in and approves with a Wallet Standard wallet."""
    c = r.cfg
    page = r.page(wallets=("solana",))
    page.goto(f"{r.base}/owner/")
    page.wait_for_selector("text=Solana wallets")
    r.snap(page, "signin-solana")
    r.sign_in(page, wallet="Test Solana Wallet")
    card = r.card(page, c["approvalTx"])
    card.wait_for()
    body = card.inner_text()
    for needle in [c["formatted"], "Solana devnet", c["to"][:4], short(c["to"]), c["summary"]]:
        r.check(needle in body, f"the card shows {needle!r}:\n{body}")
    r.snap(page, "pending-solana")
    card.get_by_role("button", name="Approve").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    r.check("--ledger" in dialog.inner_text(), "a Solana action names the CLI --ledger fallback")
    dialog.get_by_role("button", name="Sign and approve").click()
    page.wait_for_url(f"**/owner/#/tx/{c['approvalTx']}")
    r.wait_text(page, "Final status: CONFIRMED", timeout=60_000)
    r.check(r.signed[-1]["text"] == r.messages[-1]["message"], "the wallet signed exactly the daemon's text")
    r.snap(page, "tx-confirmed-solana")
    page.goto(f"{r.base}/owner/#/pending")
    r.wait_text(page, "Nothing is waiting for you")
    r.check("Last refreshed" in r.text(page), "the empty state says when it looked")
    r.snap(page, "empty")


def token_expiry(r):
    """ACC-269 (page): after 900 s of daemon time the token is refused and the page returns to
    sign-in, keeping its hash route, which it reopens after signing in again."""
    c = r.cfg
    page = r.page()
    page.goto(f"{r.base}/owner/#/tx/{c['approvalTx']}")
    r.sign_in(page)
    r.wait_text(page, "Every field")
    r.advance(901)
    page.wait_for_selector("text=Sign in as the owner", timeout=30_000)
    r.check(page.url.endswith(f"#/tx/{c['approvalTx']}"), f"the hash route is kept: {page.url}")
    r.snap(page, "signed-out")
    r.sign_in(page)
    r.wait_text(page, "Every field")


def kill_switch(r):
    """ACC-272: activate from the console; the page shows the locked state and the recover
    command, and no recover control; /owner/ still loads."""
    page = r.page()
    page.goto(f"{r.base}/owner/#/kill-switch")
    r.sign_in(page)
    r.wait_text(page, "Activate the kill switch")
    page.get_by_label("Reason (1–500 characters)").fill("suspicious agent behaviour")
    page.get_by_role("button", name="Activate the kill switch").click()
    confirm = page.get_by_role("dialog")
    confirm.wait_for()
    r.snap(page, "kill-switch-confirm")
    confirm.get_by_role("button", name="Yes, continue to sign").click()
    sign = page.get_by_role("dialog")
    sign.locator("pre").wait_for()
    r.check("kill_switch system (stop all agents)" in sign.locator("pre").inner_text(), "the kill_switch text")
    sign.get_by_role("button", name="Sign and stop everything").click()
    r.wait_text(page, "waiaas kill-switch recover")
    answer = r.wait_answer(page, "/v1/owner/kill-switch")
    r.check(answer["status"] == 200, f"activation: {answer}")
    page.goto(f"{r.base}/owner/#/pending")
    page.reload()
    r.wait_text(page, "waiaas kill-switch recover")
    r.check(page.get_by_role("button", name="Recover").count() == 0, "no recover control")
    r.check("suspicious agent behaviour" in r.text(page), "the reason is shown")
    r.snap(page, "locked")


SCENARIOS = {
    "evm-approve": evm_approve,
    "keyboard": keyboard,
    "reject": reject,
    "refusals": refusals,
    "sol-approve": sol_approve,
    "token-expiry": token_expiry,
    "kill-switch": kill_switch,
}


def main():
    scenario, cfg_path = sys.argv[1], sys.argv[2]
    cfg = json.loads(pathlib.Path(cfg_path).read_text())
    with Run(scenario, cfg) as r:
        try:
            SCENARIOS[scenario](r)
        except Failed as e:
            r.failures.append(f"check failed: {e}")
        except Exception as e:  # noqa: BLE001 - a timeout or a Playwright error is a failure too
            r.failures.append(f"{type(e).__name__}: {e}")
        if r.failures and r.pages:
            # What the page showed when it failed, for the report and the artifacts.
            last = r.pages[-1]
            try:
                last.screenshot(path=str(r.out / "failure.png"), full_page=True)
                r.failures.append(f"the page at {last.url} showed:\n{last.inner_text('body')}")
            except Exception:  # noqa: BLE001 - the page may be gone
                pass
        if r.foreign:
            r.failures.append(f"requests to other origins: {r.foreign}")
        print(json.dumps(r.report()))
    sys.exit(1 if r.failures else 0)


if __name__ == "__main__":
    main()
