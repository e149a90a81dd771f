//! The bare Argon2id rate of this machine: the ceiling for confirms per second.
//!
//! Hashes with the argon2 crate directly at the parameters the example servers use
//! ([`HashingParams::OWASP`]), first on one thread (time per hash), then on one thread per
//! CPU at once (hashes per second), each for a fixed time. `benches/load.sh` runs it beside
//! the confirm load, so both figures come from the same machine in the same state.
//!
//! Run with `cargo bench --bench argon2_rate`; `ARGON2_RATE_SECS` sets the time per phase
//! (default 3), and `ARGON2_RATE_MEMORY_KIB` replaces the memory cost, to see how the
//! parallel rate depends on whether the hashes' memory fits in the CPU caches together. It
//! prints one `RESULT` line for scripts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use password_setup::HashingParams;

/// The parameters measured: OWASP's, or its memory cost replaced by `ARGON2_RATE_MEMORY_KIB`.
fn params() -> HashingParams {
    let mut params = HashingParams::OWASP;
    if let Some(kib) = std::env::var("ARGON2_RATE_MEMORY_KIB")
        .ok()
        .and_then(|text| text.parse().ok())
    {
        params.memory_kib = kib;
    }
    params
}

/// Hashes for `length` on the calling thread; returns how many were done and how long they took.
fn hash_for(length: Duration) -> (u32, Duration) {
    let params = params();
    let argon2 = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .unwrap(),
    );
    let mut out = [0u8; 32];
    let started = Instant::now();
    let mut count = 0;
    while started.elapsed() < length {
        argon2
            .hash_password_into(
                b"correct horse battery staple 42",
                b"bench salt 16 by",
                &mut out,
            )
            .unwrap();
        black_box(&out);
        count += 1;
    }
    (count, started.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names another bench skips this one.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if filter.is_some_and(|filter| !"argon2_rate".contains(&filter)) {
        return;
    }
    let seconds = std::env::var("ARGON2_RATE_SECS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3);
    let length = Duration::from_secs(seconds);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);

    hash_for(Duration::from_millis(300));
    let (count, took) = hash_for(length);
    let per_hash = took / count;

    let workers: Vec<_> = (0..cpus)
        .map(|_| std::thread::spawn(move || hash_for(length)))
        .collect();
    let rate: f64 = workers
        .into_iter()
        .map(|worker| {
            let (count, took) = worker.join().unwrap();
            f64::from(count) / took.as_secs_f64()
        })
        .sum();

    let params = params();
    println!(
        "argon2id m={} KiB t={} p={}: {:.2} ms per hash on one thread \
         ({:.1}/s x {cpus} cpus = {:.1}/s); {:.1}/s measured on {cpus} threads",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        per_hash.as_secs_f64() * 1e3,
        1.0 / per_hash.as_secs_f64(),
        cpus as f64 / per_hash.as_secs_f64(),
        rate,
    );
    println!(
        "RESULT cpus={cpus} memory_kib={} ms_per_hash={:.3} cores_over_time={:.1} \
         parallel_rate={rate:.1}",
        params.memory_kib,
        per_hash.as_secs_f64() * 1e3,
        cpus as f64 / per_hash.as_secs_f64(),
    );
}
