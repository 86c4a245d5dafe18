// Browser wallets, found the standard ways and asked to sign exactly the text the daemon made.
// EVM: EIP-6963 announcements (window.ethereum only when none announced), EIP-1193
// personal_sign. Solana: the Wallet Standard app side (register-wallet / app-ready), wallets
// with standard:connect and solana:signMessage; never solana:signIn (the wallet would write the
// text itself).

const ANNOUNCE_MS = 500;

function iconOk(icon) {
  return typeof icon === "string" && icon.startsWith("data:image/") ? icon : null;
}

/** Every wallet found within 500 ms: [{id, kind: "evm"|"solana", name, icon, handle}]. */
export function discover() {
  return new Promise((resolve) => {
    const found = [];
    const onAnnounce = (event) => {
      const d = event.detail || {};
      if (!d.provider || !d.info) return;
      if (found.some((w) => w.kind === "evm" && w.id === d.info.uuid)) return;
      found.push({ id: d.info.uuid || d.info.rdns || d.info.name, kind: "evm", name: d.info.name || "EVM wallet", icon: iconOk(d.info.icon), handle: d.provider });
    };
    window.addEventListener("eip6963:announceProvider", onAnnounce);
    window.dispatchEvent(new Event("eip6963:requestProvider"));

    const register = (...wallets) => {
      for (const w of wallets) {
        const f = w && w.features;
        if (!f || !f["standard:connect"] || !f["solana:signMessage"]) continue;
        if (found.some((x) => x.kind === "solana" && x.handle === w)) continue;
        found.push({ id: "sol:" + w.name, kind: "solana", name: w.name || "Solana wallet", icon: iconOk(w.icon), handle: w });
      }
      return () => {};
    };
    const api = { register };
    const onRegister = (event) => {
      const cb = event.detail;
      if (typeof cb === "function") cb(api);
    };
    window.addEventListener("wallet-standard:register-wallet", onRegister);
    try {
      window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: api }));
    } catch (_) {}

    setTimeout(() => {
      window.removeEventListener("eip6963:announceProvider", onAnnounce);
      window.removeEventListener("wallet-standard:register-wallet", onRegister);
      if (!found.some((w) => w.kind === "evm") && window.ethereum && typeof window.ethereum.request === "function") {
        found.push({ id: "window.ethereum", kind: "evm", name: "Browser wallet", icon: null, handle: window.ethereum });
      }
      resolve(found);
    }, ANNOUNCE_MS);
  });
}

/** The wallet's accounts after a connect: addresses (EIP-55 or base58 as the wallet gives them). */
export async function connect(wallet) {
  if (wallet.kind === "evm") {
    const accounts = await wallet.handle.request({ method: "eth_requestAccounts" });
    return accounts.map(String);
  }
  const out = await wallet.handle.features["standard:connect"].connect();
  const accounts = (out && out.accounts) || wallet.handle.accounts || [];
  wallet.accounts = accounts;
  return accounts.map((a) => a.address);
}

function hexOf(bytes) {
  let s = "0x";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** Base58 (Bitcoin alphabet) of a byte array: how Solana writes signatures. */
export function base58(bytes) {
  const digits = [0];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = "";
  for (const b of bytes) {
    if (b !== 0) break;
    out += "1";
  }
  for (let i = digits.length - 1; i >= 0; i--) out += B58[digits[i]];
  return out;
}

/** Signs exactly `message` with `account` of `wallet`: a 0x signature (EVM) or base58 (Solana). */
export async function sign(wallet, account, message) {
  const bytes = new TextEncoder().encode(message);
  if (wallet.kind === "evm") {
    return String(await wallet.handle.request({ method: "personal_sign", params: [hexOf(bytes), account] }));
  }
  const acct = (wallet.accounts || wallet.handle.accounts || []).find((a) => a.address === account);
  const [out] = await wallet.handle.features["solana:signMessage"].signMessage({ account: acct, message: bytes });
  return base58(out.signature);
}

/** Whether two addresses are the same owner (EVM case-insensitive, Solana exact). */
export function sameAddress(chain, a, b) {
  if (!a || !b) return false;
  return chain === "ethereum" ? a.toLowerCase() === b.toLowerCase() : a === b;
}
