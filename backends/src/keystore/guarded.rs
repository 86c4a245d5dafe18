//! Guarded memory for decrypted keys (03-keys.md §8).
//!
//! Each secret lives in its own page-aligned allocation surrounded by guard pages, `mlock`ed so it
//! is never swapped out (best effort: `mlock` beyond `RLIMIT_MEMLOCK` silently does nothing), and
//! made read-only once loaded. It becomes writable again only to be zeroized on drop. The type
//! has no `Debug`, `Display`, `Clone` or `Serialize`, so a secret cannot be printed or copied by
//! accident; code reads it in place through [`Guarded::with`].

use std::ptr::NonNull;

use zeroize::Zeroize;

/// `N` secret bytes in a guarded allocation.
///
/// It cannot be printed, cloned or formatted (ACC-075):
///
/// ```compile_fail
/// fn needs<T: std::fmt::Debug>() {}
/// needs::<waiaas_backends::keystore::guarded::Guarded<32>>();
/// ```
/// ```compile_fail
/// fn needs<T: Clone>() {}
/// needs::<waiaas_backends::keystore::guarded::Guarded<32>>();
/// ```
/// ```compile_fail
/// fn needs<T: std::fmt::Display>() {}
/// needs::<waiaas_backends::keystore::guarded::Guarded<32>>();
/// ```
/// ```compile_fail
/// fn needs<T: std::fmt::Debug>() {}
/// needs::<waiaas_backends::keystore::keyfile::SecretKey>();
/// ```
/// ```compile_fail
/// fn needs<T: Clone>() {}
/// needs::<waiaas_backends::keystore::keyfile::SecretKey>();
/// ```
/// ```compile_fail
/// fn needs<T: std::fmt::Debug>() {}
/// needs::<waiaas_backends::keystore::kdf::Key32>();
/// ```
/// ```compile_fail
/// fn needs<T: Clone>() {}
/// needs::<waiaas_backends::keystore::UnlockedKeystore>();
/// ```
/// ```compile_fail
/// fn needs<T: std::fmt::Debug>() {}
/// needs::<waiaas_backends::keystore::UnlockedKeystore>();
/// ```
/// The positive control: every type named above exists (so the failures above are about the
/// missing traits, not a typo):
/// ```
/// fn needs<T: Send + Sync>() {}
/// needs::<waiaas_backends::keystore::guarded::Guarded<32>>();
/// needs::<waiaas_backends::keystore::keyfile::SecretKey>();
/// needs::<waiaas_backends::keystore::kdf::Key32>();
/// needs::<waiaas_backends::keystore::UnlockedKeystore>();
/// ```
pub struct Guarded<const N: usize> {
    ptr: NonNull<[u8; N]>,
}

// SAFETY: the allocation is owned exclusively by this value and only read through `&self`
// (read-only pages) or written in `drop` (`&mut self`); no interior mutability exists.
unsafe impl<const N: usize> Send for Guarded<N> {}
// SAFETY: see `Send`; shared access is read-only.
unsafe impl<const N: usize> Sync for Guarded<N> {}

/// The allocation failed (out of memory or address space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot allocate guarded memory")]
pub struct AllocError;

impl<const N: usize> Guarded<N> {
    /// Moves `secret` into guarded memory and zeroizes the source.
    pub fn new(secret: &mut [u8; N]) -> Result<Guarded<N>, AllocError> {
        // SAFETY: memsec::malloc returns a fresh, writable, properly aligned allocation of
        // `size_of::<[u8; N]>()` bytes (or None), with guard pages around it.
        let ptr = unsafe { memsec::malloc::<[u8; N]>() }.ok_or(AllocError)?;
        // SAFETY: `ptr` is valid for writes of N bytes and does not overlap `secret`.
        unsafe { std::ptr::copy_nonoverlapping(secret.as_ptr(), ptr.as_ptr().cast::<u8>(), N) };
        secret.zeroize();
        // SAFETY: `ptr` came from memsec::malloc.
        unsafe { memsec::mprotect(ptr, memsec::Prot::ReadOnly) };
        Ok(Guarded { ptr })
    }

    /// Reads the secret in place.
    pub fn with<R>(&self, f: impl FnOnce(&[u8; N]) -> R) -> R {
        // SAFETY: the allocation is live, initialised and readable for the lifetime of `self`.
        f(unsafe { self.ptr.as_ref() })
    }
}

impl<const N: usize> Drop for Guarded<N> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from memsec::malloc and is freed exactly once, here. It is made
        // writable, zeroized, then released.
        unsafe {
            memsec::mprotect(self.ptr, memsec::Prot::ReadWrite);
            self.ptr.as_mut().zeroize();
            memsec::free(self.ptr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_zeroizes_the_source() {
        let mut secret = [42u8; 32];
        let g = Guarded::new(&mut secret).unwrap();
        assert_eq!(secret, [0u8; 32], "the source copy is wiped");
        assert_eq!(g.with(|s| *s), [42u8; 32]);
        let many: Vec<Guarded<64>> = (0..64).map(|i| Guarded::new(&mut [i as u8; 64]).unwrap()).collect();
        assert_eq!(many[63].with(|s| s[0]), 63);
    }
}
