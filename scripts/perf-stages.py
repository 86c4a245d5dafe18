#!/usr/bin/env python3
"""Where the daemon's CPU goes, per stage of a send (issue #21).

Reads `perf script -F comm,tid,ip,sym` output of a call-graph profile of the daemon (DWARF
unwinding works on the release binary as built):

    perf record -F 299 --call-graph dwarf,32768 -p <daemon pid> -o perf.data   # during a load run
    perf script -i perf.data -F comm,tid,ip,sym > perf.txt
    scripts/perf-stages.py perf.txt [sends]

Each sample is charged to the nearest frame, walking from the leaf toward the root, that belongs
to a known owner (signing, redb, storage ops, the node RPC client, the HTTP server, ...): a
`malloc` under serde_json under alloy is the RPC client's. Samples of agent and session set-up
are reported apart and left out of the per-send split. A second table splits the kernel's share
(fsync, sockets, scheduling). With `sends` and the daemon's CPU per send from the load tool, the
shares become microseconds per send.
"""

import re
import sys
from collections import Counter

# Set-up requests the load tool makes before it measures: charged apart, whatever is under them.
SETUP = re.compile(r"handlers::agents|handlers::sessions|domain::agents::|handlers::admin|anvil_")

# (owner, pattern): the nearest matching frame from the leaf decides.
OWNERS = [
    ("signing + verification (k256)", r"^waiaas_backends::|^k256::|^ecdsa::|^elliptic_curve::"),
    ("redb (B-trees, pages, commit)", r"^redb::"),
    ("storage ops + row codec", r"^waiaas_storage::"),
    ("node RPC client (alloy, reqwest, hyper client)", r"waiaas::adapters::chains|^alloy|^reqwest::|hyper_util::client|hyper::client"),
    ("policy decision", r"waiaas::domain::pipeline::decide|waiaas::rules::"),
    ("request validation", r"waiaas::domain::pipeline::request"),
    ("AutoStop, notifications", r"waiaas::domain::emergency::autostop|waiaas::domain::notify|waiaas::adapters::notify"),
    ("pipeline orchestration", r"waiaas::domain::pipeline"),
    ("HTTP server (warp, hyper, auth, envelope)", r"waiaas::http|^warp::|hyper::server|hyper::proto::h1::role::Server"),
    ("database thread hand-off", r"waiaas::runtime::db|blocking::pool|spawn_blocking"),
    ("idle sync timer", r"start_idle_sync"),
    # Socket reads and writes go through tokio::net / tokio::runtime::io: they belong to the
    # connection further up (hyper client = RPC, hyper server = HTTP), not to the scheduler.
    ("tokio scheduler", r"^tokio::(?!net::|io::|runtime::io::)"),
]
OWNERS = [(name, re.compile(p)) for name, p in OWNERS]

KERNEL = [
    ("fsync (ext4, block layer)", re.compile(r"ext4_sync_file|fdatasync|fsync|blk_|jbd2")),
    ("sockets, epoll", re.compile(r"tcp_|sock_|inet_|__sys_send|__sys_recv|sys_sendto|sys_recvfrom|epoll|unix_stream|writev|readv|skb|ip_")),
    ("scheduling, futex, wake-ups", re.compile(r"futex|schedule|sched_|finish_task_switch|try_to_wake_up|hrtimer|nanosleep")),
    ("page cache, file I/O", re.compile(r"filemap|folio|ext4_|vfs_|generic_perform_write|copy_page|pwrite|pread")),
    ("memory (faults, mmap)", re.compile(r"page_fault|mmap|munmap|madvise|do_anonymous|brk")),
]


def samples(lines):
    frames, header = [], None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if header is not None:
                yield header, frames
            frames, header = [], None
        elif header is None:
            header = line
        else:
            parts = line.strip().split(None, 1)
            addr, sym = parts[0], (parts[1] if len(parts) > 1 else "")
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            frames.append((addr, sym))
    if header is not None:
        yield header, frames


def main():
    path = sys.argv[1]
    sends = int(sys.argv[2]) if len(sys.argv) > 2 else None
    cpu_ms = float(sys.argv[3]) if len(sys.argv) > 3 else None
    owners, kernel = Counter(), Counter()
    total = setup = in_kernel = 0
    with open(path, errors="replace") as f:
        for _, frames in samples(f):
            total += 1
            syms = [s for _, s in frames]
            if any(SETUP.search(s) for s in syms):
                setup += 1
                continue
            owner = "other (libc, std, unresolved)"
            for s in syms:
                hit = next((name for name, p in OWNERS if p.search(s)), None)
                if hit:
                    owner = hit
                    break
            owners[owner] += 1
            if frames and frames[0][0].startswith("ffffffff"):
                in_kernel += 1
                ksyms = [s for a, s in frames if a.startswith("ffffffff")]
                kind = next((name for name, p in KERNEL if any(p.search(s) for s in ksyms)), "other kernel")
                kernel[kind] += 1
    measured = total - setup
    print(f"{total} samples; {setup} in agent/session set-up (left out); {measured} in the send path\n")
    per = f" | µs per send (of {cpu_ms} ms)" if cpu_ms else ""
    print(f"| owner | share{per} |")
    print("|---|---|" + ("---|" if cpu_ms else ""))
    for name, n in owners.most_common():
        us = f" | {n / measured * cpu_ms * 1000:.0f}" if cpu_ms else ""
        print(f"| {name} | {100 * n / measured:.1f} %{us} |")
    print(f"\nkernel: {100 * in_kernel / max(measured, 1):.1f} % of the send path's samples\n")
    print("| kernel work | share of all send-path samples |")
    print("|---|---|")
    for name, n in kernel.most_common():
        print(f"| {name} | {100 * n / measured:.1f} % |")
    if sends:
        print(f"\n{sends} sends")


if __name__ == "__main__":
    main()
