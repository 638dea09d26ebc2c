//! Who a player is. Anonymous sessions (the development default) give a
//! random player id; verified identity comes from a JWT signed by the
//! studio's own auth service, checked here with `jsonwebtoken`: HS256 with a
//! shared secret, RS256 or EdDSA with a public key (PEM) or a JWKS file.
//! `sub` names the player, `exp` is required and honoured, `aud` and `iss`
//! are checked when configured. A token's header must name an algorithm of
//! a configured key (so neither `none` nor an RSA public key used as an
//! HMAC secret gets through).
//!
//! Player ids: a verified player's id is below [`VERIFIED_ID_LIMIT`] (its
//! `sub` itself when that is a decimal number in range, else a hash of it);
//! anonymous ids are drawn from above it. The history store tells them
//! apart by that alone (ratings count only for verified players unless
//! `MATCHD_RATE_ANONYMOUS` is on).

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use matchd_protocol::PlayerId;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use matchd_actors::util::{is_verified_player, VERIFIED_ID_LIMIT};

/// Longest token looked at; longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Which kinds of identity a node accepts (`MATCHD_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone gets a session (development, trusted networks).
    Anonymous,
    /// Only players with a JWT of the studio.
    Jwt,
    /// Both; only verified players count for ratings by default.
    Both,
}

impl AuthMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "anonymous" => Some(Self::Anonymous),
            "jwt" => Some(Self::Jwt),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    pub fn anonymous(self) -> bool {
        self != Self::Jwt
    }

    pub fn jwt(self) -> bool {
        self != Self::Anonymous
    }
}

/// Where the verification keys come from, and what the claims must say.
#[derive(Clone, Default)]
pub struct JwtConfig {
    /// HS256 shared secret (`MATCHD_JWT_SECRET`).
    pub secret: Option<String>,
    /// PEM public key, RSA (RS256) or Ed25519 (EdDSA)
    /// (`MATCHD_JWT_PUBLIC_KEY_FILE`).
    pub public_key_file: Option<std::path::PathBuf>,
    /// A JWKS document (`MATCHD_JWT_JWKS_FILE`), keys chosen by `kid`.
    pub jwks_file: Option<std::path::PathBuf>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The shared key must never reach a log line.
        f.debug_struct("JwtConfig")
            .field("hs256", &self.secret.as_ref().map(|_| "(redacted)"))
            .field("public_key_file", &self.public_key_file)
            .field("jwks_file", &self.jwks_file)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway_s", &self.leeway_s)
            .finish()
    }
}

impl JwtConfig {
    pub fn has_keys(&self) -> bool {
        self.secret.is_some() || self.public_key_file.is_some() || self.jwks_file.is_some()
    }
}

/// Why a token was refused. The message names the reason, never a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not a valid JWT of this game (signature, algorithm or shape)")]
    Invalid,
    #[error("the token is for another audience or issuer")]
    WrongAudience,
    #[error("the token's sub must be a non-empty string of at most 256 bytes")]
    BadSubject,
}

impl TokenError {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TokenError::Expired => "expired",
            TokenError::Invalid => "invalid",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::BadSubject => "bad_subject",
        }
    }
}

/// A verified player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub player_id: PlayerId,
    /// `exp`, in Unix seconds.
    pub expires_at: u64,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Checks JWTs against the configured keys.
pub struct Verifier {
    keys: Vec<Key>,
    audience: Option<String>,
    issuer: Option<String>,
    leeway_s: u64,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

impl Verifier {
    /// Loads the keys `cfg` names; an unreadable or unusable key is an
    /// error (the node must not start half-configured).
    pub fn new(cfg: &JwtConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        if let Some(secret) = &cfg.secret {
            if secret.len() < 32 {
                return Err("MATCHD_JWT_SECRET must be at least 32 bytes".into());
            }
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = &cfg.public_key_file {
            keys.push(pem_key(path)?);
        }
        if let Some(path) = &cfg.jwks_file {
            keys.extend(jwks_keys(path)?);
        }
        if keys.is_empty() {
            return Err("JWT identity needs MATCHD_JWT_SECRET, MATCHD_JWT_PUBLIC_KEY_FILE or MATCHD_JWT_JWKS_FILE".into());
        }
        Ok(Self {
            keys,
            audience: cfg.audience.clone(),
            issuer: cfg.issuer.clone(),
            leeway_s: cfg.leeway_s,
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_s;
        v.set_required_spec_claims(&["exp", "sub"]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            v.required_spec_claims.insert("iss".into());
        }
        v
    }

    /// The player a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        // An algorithm this crate does not know (`none` among them) fails
        // here; one no configured key uses finds no candidate below.
        let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
        let mut last = TokenError::Invalid;
        let candidates = self.keys.iter().filter(|k| {
            k.alg == header.alg
                && match (&header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        });
        for k in candidates {
            match decode::<Claims>(token, &k.key, &self.validation(k.alg)) {
                Ok(data) => {
                    let sub = data.claims.sub;
                    if sub.is_empty() || sub.len() > 256 {
                        return Err(TokenError::BadSubject);
                    }
                    return Ok(Verified {
                        player_id: player_of(&sub),
                        expires_at: data.claims.exp,
                    });
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => TokenError::Expired,
                        ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => {
                            TokenError::WrongAudience
                        }
                        _ => TokenError::Invalid,
                    };
                    if last != TokenError::Invalid {
                        // The signature was good: the claims are the answer.
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts) rather
/// than of a session token (hex).
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() > 20 && token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The player id of a verified `sub`: the number itself when `sub` is a
/// decimal in `1..VERIFIED_ID_LIMIT`, else 52 bits of its SHA-256.
pub fn player_of(sub: &str) -> PlayerId {
    if let Ok(n) = sub.parse::<u64>() {
        if (1..VERIFIED_ID_LIMIT).contains(&n) && !sub.starts_with('0') {
            return n;
        }
    }
    let hash = Sha256::digest(format!("matchd-player:{sub}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    (u64::from_le_bytes(first) % VERIFIED_ID_LIMIT).max(1)
}

fn pem_key(path: &Path) -> Result<Key, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (alg, key) = match DecodingKey::from_rsa_pem(&pem) {
        Ok(k) => (Algorithm::RS256, k),
        Err(_) => match DecodingKey::from_ed_pem(&pem) {
            Ok(k) => (Algorithm::EdDSA, k),
            Err(_) => {
                return Err(format!(
                    "{}: not an RSA or Ed25519 public key in PEM",
                    path.display()
                ))
            }
        },
    };
    Ok(Key {
        kid: None,
        alg,
        key,
    })
}

fn jwks_keys(path: &Path) -> Result<Vec<Key>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a JWKS: {e}", path.display()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), _) | (None, AlgorithmParameters::RSA(_)) => {
                Algorithm::RS256
            }
            (Some(KeyAlgorithm::EdDSA), _) | (None, AlgorithmParameters::OctetKeyPair(_)) => {
                Algorithm::EdDSA
            }
            (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
            _ => {
                log::warn!(kid:? = jwk.common.key_id; "JWKS key skipped: only RS256, EdDSA and ES256 keys are used");
                continue;
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| format!("{}: unusable key: {e}", path.display()))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err(format!("{}: no usable key", path.display()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

    fn now() -> u64 {
        matchd_actors::util::unix_ms(std::time::SystemTime::now()) / 1000
    }

    fn hs(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode")
    }

    fn verifier(aud: Option<&str>) -> Verifier {
        Verifier::new(&JwtConfig {
            secret: Some(SECRET.into()),
            audience: aud.map(Into::into),
            ..JwtConfig::default()
        })
        .expect("verifier")
    }

    #[test]
    fn hs256_tokens_name_their_player_and_bad_ones_are_refused() {
        let v = verifier(Some("my-game"));
        let good = hs(serde_json::json!({"sub": "42", "exp": now() + 600, "aud": "my-game"}));
        assert_eq!(v.verify(&good).expect("valid").player_id, 42);
        let named = hs(serde_json::json!({"sub": "user-7", "exp": now() + 600, "aud": "my-game"}));
        let id = v.verify(&named).expect("valid").player_id;
        assert!(is_verified_player(id) && id == player_of("user-7"));
        let expired = hs(serde_json::json!({"sub": "42", "exp": now() - 3600, "aud": "my-game"}));
        assert_eq!(v.verify(&expired), Err(TokenError::Expired));
        let other = hs(serde_json::json!({"sub": "42", "exp": now() + 600, "aud": "other"}));
        assert_eq!(v.verify(&other), Err(TokenError::WrongAudience));
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "42", "exp": now() + 600, "aud": "my-game"}),
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .expect("encode");
        assert_eq!(v.verify(&forged), Err(TokenError::Invalid));
        // alg none: header {"alg":"none"}, no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI0MiIsImV4cCI6OTk5OTk5OTk5OSwiYXVkIjoibXktZ2FtZSJ9.";
        assert_eq!(v.verify(none), Err(TokenError::Invalid));
        let no_exp = hs(serde_json::json!({"sub": "42", "aud": "my-game"}));
        assert_eq!(v.verify(&no_exp), Err(TokenError::Invalid));
    }

    #[test]
    fn ids_of_verified_and_anonymous_players_never_meet() {
        assert_eq!(player_of("1"), 1);
        assert_ne!(
            player_of("007"),
            7,
            "only canonical numbers are taken as ids"
        );
        for sub in ["alice", "0", "9007199254740993", "-1"] {
            assert!(is_verified_player(player_of(sub)), "{sub}");
        }
        for _ in 0..1000 {
            assert!(!is_verified_player(
                matchd_actors::util::anonymous_player_id()
            ));
        }
    }

    #[test]
    fn no_keys_or_a_short_secret_is_a_configuration_error() {
        assert!(Verifier::new(&JwtConfig::default()).is_err());
        let short = JwtConfig {
            secret: Some("short".into()),
            ..JwtConfig::default()
        };
        assert!(Verifier::new(&short).is_err());
    }
}
