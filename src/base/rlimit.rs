//! The daemon's own file-descriptor limit (issue #22): raised from the soft limit to the hard
//! one at start, so the connection caps can be sized below what the process may really open.

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit and returns the limit now in force.
pub(crate) fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum)
        && cur < max
    {
        limit.current = Some(max);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = Some(cur);
        }
    }
    // `None` is "unlimited".
    limit.current.unwrap_or(u64::MAX)
}
