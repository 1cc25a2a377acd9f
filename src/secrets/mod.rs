//! Secrets: the redacting `Secret` type, generation from the operating system's RNG, the
//! verifiers servers store instead of passwords, and the stores that keep versions of them.
//!
//! Generation is pure (an RNG in, values out). Only the stores touch the disk or the network.

pub mod aws;
pub mod file;
pub mod store;

use std::fmt;

use rand::{CryptoRng, Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Characters of generated secrets: letters and digits only, so a secret is safe unquoted in a
/// URL, a YAML or TOML value, a Redis ACL line and a shell word.
pub const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of generated secrets: 40 characters of a 62-letter alphabet is 238 bits, above the
/// 192 bits the design asks for.
pub const SECRET_LEN: usize = 40;

/// A secret value. `Debug` and `Display` print `[redacted]`; the value is reached only through
/// [`Secret::expose`], so every place a secret leaves the program is greppable.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that is already secret (read from a store or a key file).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself. Call only where the value must leave: a file of mode 0600, a server,
    /// or stdout when the user asked for it (`hardstack env`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Draws a new secret. Production passes `rand::rngs::OsRng`; tests may pass a seeded RNG.
pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Secret {
    let value: String = (0..SECRET_LEN).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    Secret(value)
}

/// Entropy of a generated secret in bits.
pub fn entropy_bits() -> f64 {
    SECRET_LEN as f64 * (ALPHABET.len() as f64).log2()
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for a password. Sending this instead of the
/// password keeps the cleartext out of the server log even with `log_statement = ddl`.
pub fn scram_verifier(password: &Secret) -> String {
    postgres_protocol::password::scram_sha_256(password.expose().as_bytes())
}

/// The `#<hex>` form of a password for a Redis ACL file: SHA-256, lowercase hex.
pub fn redis_acl_hash(password: &Secret) -> String {
    hex::encode(Sha256::digest(password.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn secret_redacts_in_debug_and_display() {
        let secret = Secret::new("hunter2hunter2");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(!format!("{:?}", vec![secret.clone()]).contains("hunter2"));
    }

    #[test]
    fn generated_secrets_have_192_bits_and_a_safe_alphabet() {
        assert!(entropy_bits() >= 192.0, "{}", entropy_bits());
        let mut rng = rand::rngs::OsRng;
        let secrets: Vec<Secret> = (0..200).map(|_| generate(&mut rng)).collect();
        for secret in &secrets {
            assert_eq!(secret.expose().len(), SECRET_LEN);
            assert!(secret.expose().bytes().all(|b| ALPHABET.contains(&b)));
        }
        let distinct: std::collections::HashSet<_> = secrets.iter().map(Secret::expose).collect();
        assert_eq!(distinct.len(), secrets.len());
    }

    #[test]
    fn generation_uses_the_whole_alphabet() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let all: String = (0..100).map(|_| generate(&mut rng).expose().to_owned()).collect();
        for letter in ALPHABET {
            assert!(all.as_bytes().contains(letter), "{} never drawn", *letter as char);
        }
    }

    #[test]
    fn scram_verifier_has_postgres_format() {
        let verifier = scram_verifier(&Secret::new("pencil"));
        // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
        let rest = verifier.strip_prefix("SCRAM-SHA-256$4096:").expect("prefix and iterations");
        let (salt, keys) = rest.split_once('$').unwrap();
        assert!(!salt.is_empty());
        let (stored, server) = keys.split_once(':').unwrap();
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        assert_eq!(engine.decode(stored).unwrap().len(), 32);
        assert_eq!(engine.decode(server).unwrap().len(), 32);
        assert!(!verifier.contains("pencil"));
    }

    #[test]
    fn redis_acl_hash_is_sha256_hex() {
        // echo -n foobar | sha256sum
        assert_eq!(
            redis_acl_hash(&Secret::new("foobar")),
            "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"
        );
    }
}
