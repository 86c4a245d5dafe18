//! The libFuzzer driver of `waiaas::fuzz` (docs/fuzzing.md). One binary for every target, so the
//! instrumented daemon links once: `WAIAAS_FUZZ_TARGET` names the target, and
//! `WAIAAS_FUZZ_SEEDS_INTO`, when set, is the corpus folder its seeds are written into first.
//! Run it through `scripts/fuzz.sh`, which builds it on the stable toolchain.
#![no_main]

use std::sync::OnceLock;

static TARGET: OnceLock<fn(&[u8])> = OnceLock::new();

libfuzzer_sys::fuzz_target!(
    init: {
        let name = std::env::var("WAIAAS_FUZZ_TARGET").expect("set WAIAAS_FUZZ_TARGET to a target name");
        let Some((_, f)) = waiaas::fuzz::TARGETS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = waiaas::fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
            panic!("unknown target {name}; targets: {}", names.join(", "));
        };
        TARGET.set(*f).expect("set once");
        if let Ok(dir) = std::env::var("WAIAAS_FUZZ_SEEDS_INTO") {
            std::fs::create_dir_all(&dir).expect("corpus folder");
            for (i, seed) in waiaas::fuzz::seeds(&name).iter().enumerate() {
                std::fs::write(format!("{dir}/seed-{i:03}"), seed).expect("write a seed");
            }
        }
    },
    |data: &[u8]| {
        (TARGET.get().expect("init ran"))(data);
    }
);
