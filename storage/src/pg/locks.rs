//! Advisory-lock keys (13-postgres-ha.md §5, §6.1): `(int4, int4)` pairs whose class is
//! `C + n` with `C = 0x5741_0000` ("WA"), so they cannot collide with another application's keys
//! that follow the same convention.

use sha2::{Digest, Sha256};
use uuid::Uuid;

const C: i32 = 0x5741_0000;

/// The leader lock (session level, on the election connection).
pub const LEADER: (i32, i32) = (C + 1, 0);
/// The migrate lock (session level, on `db migrate`'s connection).
pub const MIGRATE: (i32, i32) = (C + 3, 0);
/// The global lock G: shared by every fenced write, exclusive for the kill switch,
/// configuration and takeover.
pub const GLOBAL: (i32, i32) = (C + 4, 0);

/// The replica lock of `replica_id`: its first 4 bytes of SHA-256.
pub fn replica(replica_id: &str) -> (i32, i32) {
    let d = Sha256::digest(replica_id.as_bytes());
    (C + 2, i32::from_be_bytes([d[0], d[1], d[2], d[3]]))
}

/// The lock of one agent: the XOR of its UUID's four 32-bit words (a collision only
/// serialises two agents more than needed).
pub fn agent(id: Uuid) -> (i32, i32) {
    (C + 5, fold(id))
}

fn fold(id: Uuid) -> i32 {
    let b = id.as_bytes();
    (0..4).fold(0i32, |acc, w| acc ^ i32::from_be_bytes([b[4 * w], b[4 * w + 1], b[4 * w + 2], b[4 * w + 3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_distinct_and_keys_fold_every_word() {
        let classes = [LEADER.0, replica("a").0, MIGRATE.0, GLOBAL.0, agent(Uuid::nil()).0];
        let mut sorted = classes.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        assert_eq!(agent(Uuid::nil()).1, 0);
        // Changing any one word changes the key.
        for w in 0..4 {
            let mut b = [0u8; 16];
            b[4 * w + 3] = 1;
            assert_eq!(agent(Uuid::from_bytes(b)).1, 1, "word {w}");
        }
        assert_ne!(replica("a").1, replica("b").1);
    }
}
