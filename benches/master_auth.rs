//! masterAuth cost (04-auth.md §2): a request whose `X-Master-Password` hits the in-memory cache
//! (HMAC-SHA256 under a per-process key, constant-time compare) versus a cache miss, which runs
//! Argon2id with the default parameters (m = 64 MiB, t = 3, p = 4). Same run, same machine.
//!
//! Run: `cargo bench --bench master_auth`

use criterion::{Criterion, criterion_group, criterion_main};
use waiaas::bench_support::MasterAuthProbe;
use waiaas_backends::keystore::kdf::KdfParams;
use waiaas_backends::keystore::master::MasterFile;

const PASSWORD: &str = "correct horse battery staple";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (file, _) = MasterFile::create(PASSWORD.as_bytes(), KdfParams::default()).unwrap();

    let mut g = c.benchmark_group("master_auth");
    let warm = MasterAuthProbe::new(file.clone());
    warm.prime(PASSWORD.as_bytes());
    g.bench_function("cache_hit", |b| b.iter(|| assert!(rt.block_on(warm.verify(PASSWORD)))));

    g.sample_size(10);
    g.bench_function("cache_miss_argon2id", |b| {
        b.iter(|| {
            // A fresh verifier has an empty cache: this is the first request after a restart
            // without a primed cache, or any request with another password.
            let cold = MasterAuthProbe::new(file.clone());
            assert!(rt.block_on(cold.verify(PASSWORD)));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
