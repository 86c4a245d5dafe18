//! A webhook endpoint that answers every request with 200 and counts them: the notification
//! channel of tests that need notifications *available* (NOTIFY and above are refused without
//! them, 07-policy.md §8) but do not look at the messages. Tests about the messages use the
//! recording receiver instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) struct Sink {
    pub(crate) url: String,
    hits: Arc<AtomicUsize>,
}

impl Sink {
    pub(crate) async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    if sock.read(&mut buf).await.unwrap_or(0) > 0 {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                });
            }
        });
        Sink { url, hits }
    }

    /// Requests received so far (the create-time health check included).
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The config section that makes one channel enough for notifications to be available.
pub(crate) fn notifications_on() -> (&'static str, String) {
    ("notifications", "enabled = true\nmin_channels = 1".to_string())
}
