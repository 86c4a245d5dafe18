//! The `waiaas` binary: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc (issue #22's soak): the daemon frees memory on many
/// threads (the async workers, the storage threads), and glibc kept what each thread's arena
/// had freed, so resident memory grew with the request count although the live heap did not.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
