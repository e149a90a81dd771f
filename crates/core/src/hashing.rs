//! Argon2id password hashing and the matching verification.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), so they carry their
//! own parameters and any Argon2 implementation can verify them. [`verify_password`] applies
//! the same NFKC normalisation as setting does; an embedding backend's login should call it
//! rather than verifying the hash itself.

use std::fmt;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use rand::Rng as _;

use crate::policy::{LARGEST_MAX_CHARS, NormalizedPassword, PasswordPolicy, normalize};
use crate::ports::PasswordHasher;
use crate::secret::NewPassword;

/// Salt length in bytes (the length the PHC string format recommends).
const SALT_BYTES: usize = 16;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingParams {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Number of passes over the memory.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl HashingParams {
    /// OWASP's recommended minimum for Argon2id: 19 MiB, two passes, one lane.
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest parameters Argon2 accepts. For tests only: a hash made with them is easy
    /// to brute-force.
    pub const INSECURE_FOR_TESTS: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    fn argon2_params(&self) -> Result<Params, HashingError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|_| HashingError::InvalidParams)
    }

    fn argon2(&self) -> Result<Argon2<'static>, HashingError> {
        Ok(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.argon2_params()?,
        ))
    }
}

impl Default for HashingParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// A stored password hash in PHC string format.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string read back from storage.
    pub fn from_phc(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string, for storage.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// Hashing failed. Carries no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashingError {
    /// The configured cost parameters are outside what Argon2 accepts.
    #[error("invalid Argon2 parameters")]
    InvalidParams,
    /// The stored hash is not a PHC string this library can verify.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// Argon2 itself failed, or the hashing worker went away.
    #[error("password hashing failed")]
    Failed,
    /// So many hashes are already running and waiting that this one was refused rather than
    /// queued. Nothing was hashed; the same password can be submitted again later.
    #[error("too many passwords are waiting to be hashed")]
    Busy {
        /// About how long until the queue has room again.
        retry_after: time::Duration,
    },
}

/// Hashes a normalised password with Argon2id and a fresh random salt.
///
/// # Errors
/// [`HashingError::InvalidParams`] if `params` are outside what Argon2 accepts.
pub fn hash_password(
    password: &NormalizedPassword,
    params: &HashingParams,
) -> Result<PasswordHash, HashingError> {
    let mut salt = [0u8; SALT_BYTES];
    rand::rng().fill_bytes(&mut salt);
    let phc = params
        .argon2()?
        .hash_password_with_salt(password.expose_secret().as_bytes(), &salt)
        .map_err(|_| HashingError::Failed)?;
    Ok(PasswordHash(phc.to_string()))
}

/// Argon2's working memory (`memory_kib` of it), kept from one hash to the next.
///
/// [`hash_password`] allocates this memory afresh for every hash. Freshly mapped pages must be
/// faulted in and zeroed by the kernel, which costs about as much CPU as the hash itself at
/// the OWASP parameters, and freed blocks of this size linger in the allocator's per-thread
/// arenas, so a server hashing on many threads holds far more memory than it hashes with.
/// Reusing one `HashingMemory` per concurrent hash avoids both. It is wiped after each hash,
/// since its blocks would let anyone who reads them test password guesses cheaply.
pub struct HashingMemory {
    blocks: Vec<Block>,
}

impl HashingMemory {
    /// Memory for hashing with `params`.
    ///
    /// # Errors
    /// [`HashingError::InvalidParams`] if Argon2 would refuse `params`.
    pub fn for_params(params: &HashingParams) -> Result<Self, HashingError> {
        let count = params.argon2_params()?.block_count();
        Ok(Self {
            blocks: vec![Block::default(); count],
        })
    }
}

impl Drop for HashingMemory {
    fn drop(&mut self) {
        // Wiped after every hash already; this covers memory dropped in the middle of one.
        // Volatile writes, since stores into memory about to be freed may otherwise be elided.
        for block in &mut self.blocks {
            zeroize::Zeroize::zeroize(block.as_mut());
        }
    }
}

impl fmt::Debug for HashingMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingMemory")
            .field("kib", &self.blocks.len())
            .finish()
    }
}

/// Like [`hash_password`], but working in `memory` instead of allocating (it grows if `params`
/// need more). The result is the same PHC string [`hash_password`] would make with that salt.
///
/// # Errors
/// [`HashingError::InvalidParams`] if `params` are outside what Argon2 accepts.
pub fn hash_password_in(
    password: &NormalizedPassword,
    params: &HashingParams,
    memory: &mut HashingMemory,
) -> Result<PasswordHash, HashingError> {
    let mut salt = [0u8; SALT_BYTES];
    rand::rng().fill_bytes(&mut salt);
    hash_with_salt_in(password, params, &salt, memory)
}

fn hash_with_salt_in(
    password: &NormalizedPassword,
    params: &HashingParams,
    salt: &[u8; SALT_BYTES],
    memory: &mut HashingMemory,
) -> Result<PasswordHash, HashingError> {
    let argon2_params = params.argon2_params()?;
    let count = argon2_params.block_count();
    if memory.blocks.len() < count {
        memory.blocks.resize(count, Block::default());
    }
    let blocks = memory.blocks.get_mut(..count).ok_or(HashingError::Failed)?;

    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let hashed = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params.clone())
        .hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            salt,
            &mut output,
            &mut *blocks,
        );
    // The memory outlives this call, so these writes cannot be optimised away.
    blocks.fill(Block::default());
    hashed.map_err(|_| HashingError::Failed)?;

    let phc = argon2::PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&argon2_params).map_err(|_| HashingError::Failed)?,
        salt: Some(Salt::new(salt).map_err(|_| HashingError::Failed)?),
        hash: Some(Output::new(&output).map_err(|_| HashingError::Failed)?),
    };
    Ok(PasswordHash(phc.to_string()))
}

/// Checks a password typed at login against a stored hash, with the normalisation used when it
/// was set. The hash comparison is constant-time; the cost parameters come from the hash.
///
/// An input longer than any policy can allow is answered `false` without normalising or
/// hashing it, so login cannot be made to do unbounded work either.
///
/// # Errors
/// [`HashingError::MalformedHash`] if `stored` is not an Argon2 PHC string.
pub fn verify_password(candidate: &str, stored: &PasswordHash) -> Result<bool, HashingError> {
    let longest = PasswordPolicy {
        max_chars: LARGEST_MAX_CHARS,
        ..PasswordPolicy::default()
    };
    if longest.precheck(&NewPassword::new(candidate)).is_err() {
        return Ok(false);
    }
    let normalized = normalize(candidate);
    match Argon2::default().verify_password(normalized.expose_secret().as_bytes(), stored.as_phc())
    {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(HashingError::MalformedHash),
    }
}

/// Hashes on the calling thread. Fine for tests and blocking contexts; an async server should
/// wrap it so that hashing runs off the executor's worker threads with bounded concurrency.
///
/// Keeps the [`HashingMemory`] of finished hashes for the next ones (wiped in between), one per
/// hash that ran at the same time as others, so it holds at most the peak number of concurrent
/// callers x `memory_kib`. Fresh memory per hash would be faulted in and zeroed by the kernel
/// every time, which costs several times the hash itself on some machines.
#[derive(Debug, Default)]
pub struct Argon2idHasher {
    params: HashingParams,
    spare_memory: std::sync::Mutex<Vec<HashingMemory>>,
}

impl Clone for Argon2idHasher {
    /// The same parameters; the clone keeps memory of its own.
    fn clone(&self) -> Self {
        Self {
            params: self.params,
            spare_memory: std::sync::Mutex::default(),
        }
    }
}

impl Argon2idHasher {
    /// A hasher with the given cost parameters.
    ///
    /// # Errors
    /// [`HashingError::InvalidParams`] if Argon2 would refuse them.
    pub fn new(params: HashingParams) -> Result<Self, HashingError> {
        params.argon2()?;
        Ok(Self {
            params,
            spare_memory: std::sync::Mutex::default(),
        })
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> HashingParams {
        self.params
    }

    fn spare_memory(&self) -> std::sync::MutexGuard<'_, Vec<HashingMemory>> {
        // The list is consistent whenever the lock is released, panic or not.
        self.spare_memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl PasswordHasher for Argon2idHasher {
    async fn hash(&self, password: NormalizedPassword) -> Result<PasswordHash, HashingError> {
        let spare = self.spare_memory().pop();
        let mut memory = match spare {
            Some(memory) => memory,
            None => HashingMemory::for_params(&self.params)?,
        };
        let hashed = hash_password_in(&password, &self.params, &mut memory);
        self.spare_memory().push(memory);
        hashed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calling_thread_hasher_reuses_its_memory() {
        let hasher = Argon2idHasher::new(HashingParams::INSECURE_FOR_TESTS).unwrap();
        for password in ["first password", "second password"] {
            let hash = complete_at_once(hasher.hash(normalize(password))).unwrap();
            assert!(verify_password(password, &hash).unwrap());
            assert_eq!(
                hasher.spare_memory().len(),
                1,
                "one caller at a time, one memory"
            );
        }
        assert!(hasher.clone().spare_memory().is_empty());
    }

    /// Drives a future that never waits (the calling-thread hasher's) to completion.
    fn complete_at_once<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the calling-thread hasher never waits"),
        }
    }

    #[test]
    fn owasp_defaults_produce_an_argon2id_phc_string() {
        let hash = hash_password(&normalize("correct horse"), &HashingParams::default()).unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", &hash).unwrap());
        assert!(!verify_password("correct horsf", &hash).unwrap());
    }

    #[test]
    fn known_answer_from_the_reference_implementation() {
        // From the Argon2 reference implementation's test suite (password "password", salt
        // "somesalt", t=2, m=64 MiB, p=1).
        let reference = PasswordHash::from_phc(
            "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$\
             CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        );
        assert!(verify_password("password", &reference).unwrap());
        assert!(!verify_password("Password", &reference).unwrap());
    }

    #[test]
    fn verification_normalises_like_setting() {
        let precomposed = "ma\u{f1}ana-Horse-42";
        let decomposed = "man\u{303}ana-Horse-42";
        let hash =
            hash_password(&normalize(precomposed), &HashingParams::INSECURE_FOR_TESTS).unwrap();

        assert!(verify_password(decomposed, &hash).unwrap());
        assert!(!verify_password("manana-Horse-42", &hash).unwrap());
    }

    #[test]
    fn malformed_hashes_and_params_are_errors_not_panics() {
        let garbage = PasswordHash::from_phc("not a hash");
        assert_eq!(
            verify_password("x", &garbage),
            Err(HashingError::MalformedHash)
        );

        let zero_memory = HashingParams {
            memory_kib: 0,
            ..HashingParams::OWASP
        };
        assert_eq!(
            Argon2idHasher::new(zero_memory).map(|_| ()),
            Err(HashingError::InvalidParams)
        );
    }

    #[test]
    fn oversized_login_input_is_refused_without_hashing() {
        let hash =
            hash_password(&normalize("short one"), &HashingParams::INSECURE_FOR_TESTS).unwrap();
        let huge = "\u{fdfa}".repeat(1 << 20);
        assert_eq!(verify_password(&huge, &hash), Ok(false));
    }

    #[test]
    fn hashing_in_kept_memory_matches_the_one_shot_hash() {
        let password = normalize("correct horse");
        let salt = [42u8; SALT_BYTES];
        // Too small on purpose: the memory grows to what the parameters need.
        let mut memory = HashingMemory::for_params(&HashingParams::INSECURE_FOR_TESTS).unwrap();

        for params in [HashingParams::OWASP, HashingParams::INSECURE_FOR_TESTS] {
            let kept = hash_with_salt_in(&password, &params, &salt, &mut memory).unwrap();
            let one_shot = params
                .argon2()
                .unwrap()
                .hash_password_with_salt(password.expose_secret().as_bytes(), &salt)
                .unwrap()
                .to_string();
            assert_eq!(kept.as_phc(), one_shot);
        }

        let random_salt = hash_password_in(&password, &HashingParams::OWASP, &mut memory);
        assert!(verify_password("correct horse", &random_salt.unwrap()).unwrap());
        assert!(
            memory
                .blocks
                .iter()
                .all(|block| block.as_ref().iter().all(|&word| word == 0))
        );
    }

    #[test]
    fn debug_hides_the_hash() {
        let hash = PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA");
        assert!(!format!("{hash:?}").contains("argon2id"));
    }
}
