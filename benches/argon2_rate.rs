//! The bare Argon2id rate of this machine: the ceiling for confirms per second.
//!
//! Hashes with the argon2 crate directly at the parameters the example servers use
//! ([`HashingParams::OWASP`]), first on one thread (time per hash), then on one thread per
//! CPU at once (hashes per second), each for a fixed time. Both are measured twice: with the
//! memory the crate allocates for every hash, and with one buffer per thread kept from hash to
//! hash. The faster of the two single-thread times sets the ceiling (`cores_over_time`), so
//! the library's reuse of memory cannot make the ceiling look lower than the best bare hashing.
//! `benches/load.sh` runs it beside the confirm load, so both figures come from the same
//! machine in the same state.
//!
//! Run with `cargo bench --bench argon2_rate`; `ARGON2_RATE_SECS` sets the time per phase
//! (whole seconds, default 3, at least 1), and `ARGON2_RATE_MEMORY_KIB` replaces the memory cost, to see how the
//! parallel rate depends on whether the hashes' memory fits in the CPU caches together. It
//! prints one `RESULT` line for scripts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use password_setup::HashingParams;

#[path = "common/bare_argon2.rs"]
mod bare_argon2;

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

/// Where each hash does its work.
#[derive(Clone, Copy)]
enum Memory {
    /// Memory the argon2 crate allocates (and the kernel maps and zeroes) for every hash.
    Fresh,
    /// One buffer per thread, reused by every hash.
    Kept,
}

/// Hashes for `length` on the calling thread; returns how many were done and how long they took.
fn hash_for(length: Duration, memory: Memory) -> (u32, Duration) {
    let (argon2, mut blocks) = bare_argon2::bare_argon2(params());
    let password = b"correct horse battery staple 42";
    let salt = b"bench salt 16 by";
    let mut out = [0u8; 32];
    let started = Instant::now();
    let mut count = 0;
    while started.elapsed() < length {
        match memory {
            Memory::Fresh => argon2.hash_password_into(password, salt, &mut out),
            Memory::Kept => {
                argon2.hash_password_into_with_memory(password, salt, &mut out, &mut blocks)
            }
        }
        .unwrap();
        black_box(&out);
        count += 1;
    }
    (count, started.elapsed())
}

/// Time per hash on one thread, and hashes per second on `cpus` threads at once.
fn measure(length: Duration, cpus: usize, memory: Memory) -> (Duration, f64) {
    hash_for(Duration::from_millis(300), memory);
    let (count, took) = hash_for(length, memory);
    let per_hash = took / count;

    let workers: Vec<_> = (0..cpus)
        .map(|_| std::thread::spawn(move || hash_for(length, memory)))
        .collect();
    let rate = workers
        .into_iter()
        .map(|worker| {
            let (count, took) = worker.join().unwrap();
            f64::from(count) / took.as_secs_f64()
        })
        .sum();
    (per_hash, rate)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names another bench skips this one.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if filter.is_some_and(|filter| !"argon2_rate".contains(&filter)) {
        return;
    }
    let seconds = std::env::var("ARGON2_RATE_SECS")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(3)
        .max(1);
    let length = Duration::from_secs(seconds);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);

    let (fresh_per_hash, fresh_rate) = measure(length, cpus, Memory::Fresh);
    let (kept_per_hash, kept_rate) = measure(length, cpus, Memory::Kept);
    let per_hash = fresh_per_hash.min(kept_per_hash);

    let params = params();
    let ms = |took: Duration| took.as_secs_f64() * 1e3;
    println!(
        "argon2id m={} KiB t={} p={}, {cpus} cpus: fresh memory {:.2} ms per hash on one \
         thread, {fresh_rate:.1}/s on {cpus} threads; kept memory {:.2} ms, {kept_rate:.1}/s; \
         ceiling {cpus} / {:.2} ms = {:.1}/s",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        ms(fresh_per_hash),
        ms(kept_per_hash),
        ms(per_hash),
        cpus as f64 / per_hash.as_secs_f64(),
    );
    println!(
        "RESULT cpus={cpus} memory_kib={} ms_per_hash={:.3} cores_over_time={:.1} \
         parallel_rate={:.1} fresh_ms_per_hash={:.3} kept_ms_per_hash={:.3}",
        params.memory_kib,
        ms(per_hash),
        cpus as f64 / per_hash.as_secs_f64(),
        fresh_rate.max(kept_rate),
        ms(fresh_per_hash),
        ms(kept_per_hash),
    );
}
