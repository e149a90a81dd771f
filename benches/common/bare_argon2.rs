//! The bare Argon2id hash the benchmarks compare the library against: the argon2 crate used
//! directly, none of the library's code in between.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use password_setup::HashingParams;

/// An Argon2id hasher at `params`, and a working-memory buffer of the size it needs, for
/// hashes that keep their memory from one to the next.
pub(crate) fn bare_argon2(params: HashingParams) -> (Argon2<'static>, Vec<Block>) {
    let argon2_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .unwrap();
    let memory = vec![Block::default(); argon2_params.block_count()];
    (
        Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params),
        memory,
    )
}
