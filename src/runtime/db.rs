//! The database handle services share, and where each storage call runs.
//!
//! redb does synchronous I/O, so a call that may wait — for the write slot, or for an fsync —
//! runs on a blocking thread ([`Db::call`]). Two kinds of call are cheaper than the hop to a
//! blocking thread and back (two wake-ups, ~40–70 µs of CPU on the send path, issue #21), and run
//! on the calling task instead:
//! - reads ([`Db::read`]): a redb read transaction never waits for a writer;
//! - lazy commits ([`Db::lazy`]) while nobody holds or wants the write slot: no fsync, and
//!   nothing to wait for. When the slot is busy they take the blocking thread like any write.
//!
//! None of them lets a redb transaction span an `.await` (02-storage.md §1): each runs to its
//! end inside one synchronous closure. Under PostgreSQL every call is a round trip to the
//! server: writes always take a blocking thread and reads run in `block_in_place`.

use std::sync::Arc;

use waiaas_storage::{Store, StoreError};

#[derive(Clone)]
pub(crate) struct Db(Arc<Store>);

impl Db {
    pub(crate) fn new(store: Arc<Store>) -> Db {
        Db(store)
    }

    /// The store itself, for synchronous callers already on a blocking thread.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.0
    }

    /// Runs a storage call on a blocking thread. A panic inside it is resumed here.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.0.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Invariant("storage task cancelled")),
        }
    }

    /// Runs a read-only storage call here, on the calling task. Only for calls that read
    /// (a `get_*`, a lookup, a snapshot): a write belongs in [`Db::call`] or [`Db::lazy`].
    ///
    /// A PostgreSQL read is a network round trip: it runs in `block_in_place`, so this worker
    /// thread's other tasks move elsewhere while it waits (the daemon's runtime is
    /// multi-threaded).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if self.0.redb().is_some() { f(&self.0) } else { tokio::task::block_in_place(|| f(&self.0)) }
    }

    /// Runs a storage call that makes one lazy commit ([`waiaas_storage::Commit::Lazy`]): here
    /// when the write slot is free, else on a blocking thread. The check can be stale; then the
    /// call waits for the one commit that took the slot first.
    pub(crate) async fn lazy<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        // Only redb can commit without waiting; a PostgreSQL call is a round trip to the server.
        match self.0.redb() {
            Some(redb) if !redb.write_slot_busy() => f(&self.0),
            _ => self.call(f).await,
        }
    }
}
