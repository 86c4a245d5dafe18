//! The `waiaas` binary: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

/// jemalloc instead of glibc's malloc (issue #22's soak): the daemon frees memory on many
/// threads (the async workers, the storage threads), and glibc kept what each thread's arena
/// had freed, so resident memory grew with the request count although the live heap did not.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (`_RJEM_MALLOC_CONF` in the environment still
/// overrides them). One arena instead of four per core, and per-thread caches only for small
/// sizes (≤ 1 KiB): with eight arenas, memory freed on one thread was stranded in another
/// thread's arena and resident memory crept up with the request count (the 200,000-request soak
/// in docs/benchmarks.md: +14 % and climbing, against +3 % and flat, with no loss of
/// throughput). A background thread returns freed pages after 1 s.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: &[u8; 86] =
    b"narenas:1,tcache_max:1024,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    match waiaas::run(std::env::args_os().collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("{}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}
