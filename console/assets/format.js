// How the console writes amounts, addresses, networks, times and errors.

/** `0xAbCd EfGh …`: the full address in groups of 4 (easier to compare with a device screen). */
export function groups(address) {
  const s = String(address || "");
  const head = s.startsWith("0x") ? "0x" : "";
  const body = head ? s.slice(2) : s;
  const parts = [];
  for (let i = 0; i < body.length; i += 4) parts.push(body.slice(i, i + 4));
  return (head ? head + " " : "") + parts.join(" ");
}

/** The summary's short form: the first 6 and the last 4 characters. */
export function shortAddr(address) {
  const s = String(address || "");
  return s.length <= 13 ? s : s.slice(0, 6) + "..." + s.slice(-4);
}

/** `Ethereum testnet · chain 31337`, `Solana devnet`; mainnet says so in words. */
export function network(tx) {
  const chain = tx.chain === "ethereum" ? "Ethereum" : "Solana";
  const id = tx.chain === "ethereum" && tx.chainId != null ? ` · chain ${tx.chainId}` : "";
  return `${chain} ${tx.network}${id}` + (tx.network === "mainnet" ? " · MAINNET" : "");
}

export function isoTime(secs) {
  return new Date(secs * 1000).toISOString().replace(".000Z", "Z");
}

export function localTime(secs) {
  return new Date(secs * 1000).toLocaleString();
}

export function parseTime(iso) {
  return iso ? Math.floor(Date.parse(iso) / 1000) : null;
}

/** `4 min 05 s`, `58 s`. */
export function duration(secs) {
  const s = Math.max(0, Math.floor(secs));
  const m = Math.floor(s / 60);
  const r = s % 60;
  return m > 0 ? `${m} min ${String(r).padStart(2, "0")} s` : `${r} s`;
}

/** One sentence with the next step, by the daemon's error code (11-owner-console.md §2.2). */
export function describeError(err, context = {}) {
  if (err && err.walletCode === 4001) return "Cancelled in the wallet. Nothing was signed or sent.";
  if (err && err.connected) return `Connected ${err.connected}; the owner is ${err.owner}. Switch to the owner's account in the wallet; nothing was signed.`;
  if (err && err.walletMessage) return `The wallet refused: ${err.walletMessage}`;
  const code = err && err.code;
  switch (code) {
    case "NO_ANSWER":
      return `The daemon at ${location.origin} does not answer. Check that it runs, then retry.`;
    case "INVALID_NONCE":
    case "INVALID_SIGNATURE":
      return "The signature was not accepted (it may have expired). Sign again.";
    case "OWNER_MISMATCH":
      return context.signIn
        ? `This wallet owns no agent here (${context.address || "this address"}). Connect the owner's wallet.`
        : `The signer ${context.address || ""} is not this agent's owner${context.owner ? " (" + context.owner + ")" : ""}.`;
    case "OWNER_ACTION_MISMATCH":
      return "The signed text does not match what the daemon expects now. Reload and sign again.";
    case "TX_ALREADY_PROCESSED":
      return `This transaction was already ${(err.details && err.details.status) || "processed"}.`;
    case "TX_EXPIRED":
      return "This transaction expired before your signature arrived. Nothing was sent.";
    case "RATE_LIMIT_EXCEEDED":
      return `Too many requests; retry in ${err.retryAfter || (err.details && err.details.retryAfter) || 60} s.`;
    case "SYSTEM_LOCKED":
      return "The kill switch is active: the daemon accepts no actions until it is recovered.";
    default:
      return (err && err.message ? err.message.replace(/\.?$/, ".") : "Something went wrong.") + " Retry, or use the CLI.";
  }
}

/** `amount` base units (a decimal string) with `decimals`, as `0.000063 ETH`. */
export function units(amount, decimals, symbol) {
  const digits = String(amount).replace(/^0+(?=\d)/, "");
  const padded = digits.padStart(decimals + 1, "0");
  const whole = padded.slice(0, padded.length - decimals);
  const frac = padded.slice(padded.length - decimals).replace(/0+$/, "");
  return `${whole}${frac ? "." + frac : ""} ${symbol}`;
}
