//! The database handle services share.

use std::sync::Arc;

use waiaas_storage::{Store, StoreError};

/// The one [`Store`], with every call run on a blocking thread so no redb transaction ever
/// spans an `.await` (02-storage.md §1).
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
}
