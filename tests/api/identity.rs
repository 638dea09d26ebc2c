//! Player identity: JWTs of the game's auth service accepted and refused
//! (bad signature, expired, wrong audience, `none`), on `POST /v1/sessions`
//! and directly on `GET /v1/ws`; `MATCHD_AUTH` modes; a kick revokes the
//! player's sessions on every node, Redis included.

use std::process::Command;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use matchd::config::Secret;
use matchd::identity::{AuthMode, JwtConfig};
use matchd_actors::Catalog;
use matchd_protocol::codec::Encoding;
use matchd_protocol::ServerMsg;

use crate::redis::TestRedis;
use crate::support::{spawn_app_with, TempDir, TestApp, WsClient};

const SECRET: &str = "the-studio-auth-service-shared-secret";

fn now() -> u64 {
    matchd_actors::util::unix_ms(std::time::SystemTime::now()) / 1000
}

fn hs256(claims: serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

fn jwt_node(mode: AuthMode, jwt: JwtConfig) -> TestApp {
    spawn_app_with(
        move |c| {
            c.auth = mode;
            c.jwt = jwt;
        },
        Catalog::builtin(),
    )
}

async fn post_session(app: &TestApp, bearer: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = app.client().post(app.url("/v1/sessions"));
    if let Some(t) = bearer {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut res = req.send_json(&serde_json::json!({})).await.expect("POST");
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (res.status().as_u16(), body)
}

async fn welcome_of(app: &TestApp, token: &str) -> Option<u64> {
    let mut ws = WsClient::try_connect_to(&app.base, token, Encoding::Json).await?;
    match ws.recv().await {
        ServerMsg::Welcome { player_id, .. } => Some(player_id),
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[actix_rt::test]
async fn jwt_mode_admits_verified_players_only_and_refuses_bad_tokens() {
    let app = jwt_node(
        AuthMode::Jwt,
        JwtConfig {
            secret: Some(SECRET.into()),
            audience: Some("my-game".into()),
            issuer: Some("https://auth.example".into()),
            leeway_s: 0,
            ..JwtConfig::default()
        },
    );
    let claims = |sub: &str, exp: u64, aud: &str| serde_json::json!({"sub": sub, "exp": exp, "aud": aud, "iss": "https://auth.example"});
    let good = hs256(claims("4242", now() + 600, "my-game"), SECRET);

    let (status, body) = post_session(&app, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("verified_only")),
        "{body}"
    );

    let (status, body) = post_session(&app, Some(&good)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["player_id"], 4242);
    assert_eq!(body["verified"], true);
    let expires = body["expires_at_ms"].as_u64().expect("expires_at_ms");
    assert!(
        expires <= (now() + 600) * 1000,
        "the session ends with the JWT"
    );
    let session = body["token"].as_str().expect("token").to_string();
    assert_eq!(welcome_of(&app, &session).await, Some(4242));
    // The JWT itself opens a socket, too.
    assert_eq!(welcome_of(&app, &good).await, Some(4242));

    let refused = [
        (hs256(claims("4242", now() - 120, "my-game"), SECRET), "token_expired"),
        (hs256(claims("4242", now() + 600, "other-game"), SECRET), "invalid_token"),
        (
            hs256(claims("4242", now() + 600, "my-game"), "a-forged-secret-of-32-bytes-or-more"),
            "invalid_token",
        ),
        (
            // {"alg":"none"} with no signature.
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI0MjQyIiwiZXhwIjo5OTk5OTk5OTk5LCJhdWQiOiJteS1nYW1lIiwiaXNzIjoiaHR0cHM6Ly9hdXRoLmV4YW1wbGUifQ."
                .to_string(),
            "invalid_token",
        ),
        (
            hs256(
                serde_json::json!({"sub": "4242", "exp": now() + 600, "aud": "my-game", "iss": "https://evil.example"}),
                SECRET,
            ),
            "invalid_token",
        ),
    ];
    for (token, code) in &refused {
        let (status, body) = post_session(&app, Some(token)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(*code)),
            "{body}"
        );
        assert_eq!(
            welcome_of(&app, token).await,
            None,
            "the upgrade is refused too"
        );
    }
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("matchd_tokens_refused_total{reason=\"expired\"}")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn both_mode_keeps_anonymous_sessions_apart_from_verified_players() {
    let app = jwt_node(
        AuthMode::Both,
        JwtConfig {
            secret: Some(SECRET.into()),
            ..JwtConfig::default()
        },
    );
    let (status, anon) = post_session(&app, None).await;
    assert_eq!(status, 201);
    assert_eq!(anon["verified"], false);
    let anon_id = anon["player_id"].as_u64().expect("id");
    assert!(!matchd_actors::util::is_verified_player(anon_id));
    let jwt = hs256(
        serde_json::json!({"sub": "player-one", "exp": now() + 600}),
        SECRET,
    );
    let (status, verified) = post_session(&app, Some(&jwt)).await;
    assert_eq!(status, 201, "{verified}");
    let id = verified["player_id"].as_u64().expect("id");
    assert_eq!(id, matchd::identity::player_of("player-one"));
    assert!(matchd_actors::util::is_verified_player(id));
    // The same subject is the same player, whichever token it came with.
    let (_, again) = post_session(&app, Some(&jwt)).await;
    assert_eq!(again["player_id"], id);
}

/// An Ed25519 or RSA key pair from openssl: (private PEM, public PEM file).
fn key_pair(dir: &TempDir, kind: &str) -> (Vec<u8>, std::path::PathBuf) {
    let private = dir.path().join(format!("{kind}.key"));
    let public = dir.path().join(format!("{kind}.pub"));
    let mut gen = Command::new("openssl");
    gen.arg("genpkey").arg("-out").arg(&private);
    match kind {
        "ed25519" => gen.args(["-algorithm", "ed25519"]),
        _ => gen.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
    };
    gen.stderr(std::process::Stdio::null());
    assert!(gen.status().expect("openssl runs").success());
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("openssl runs");
    assert!(out.success());
    (std::fs::read(&private).expect("key"), public)
}

#[actix_rt::test]
async fn rs256_and_eddsa_public_keys_verify_their_tokens_only() {
    let dir = TempDir::new("jwt-keys");
    for (kind, alg) in [("ed25519", Algorithm::EdDSA), ("rsa", Algorithm::RS256)] {
        let (private, public) = key_pair(&dir, kind);
        let app = jwt_node(
            AuthMode::Jwt,
            JwtConfig {
                public_key_file: Some(public),
                ..JwtConfig::default()
            },
        );
        let key = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&private),
            _ => EncodingKey::from_rsa_pem(&private),
        }
        .expect("private key");
        let claims = serde_json::json!({"sub": "77", "exp": now() + 600});
        let token = encode(&Header::new(alg), &claims, &key).expect("sign");
        let (status, body) = post_session(&app, Some(&token)).await;
        assert_eq!(
            (status, body["player_id"].as_u64()),
            (201, Some(77)),
            "{kind}: {body}"
        );
        // An HS256 token made with the public key as its secret (algorithm
        // confusion) proves nothing.
        let public_pem =
            std::fs::read_to_string(dir.path().join(format!("{kind}.pub"))).expect("pem");
        let confused = hs256(claims.clone(), &public_pem);
        let (status, body) = post_session(&app, Some(&confused)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{kind}"
        );
    }
}

#[actix_rt::test]
async fn a_kick_revokes_the_players_sessions_on_every_node_including_redis() {
    let redis = TestRedis::start();
    let node = |id| {
        crate::redis::redis_app(&redis, "revoke:", id, |c| {
            c.admin_key = Some(Secret("admin-key".into()))
        })
    };
    let (a, b) = (node("a"), node("b"));
    let kicked = a.new_session().await;
    let spared = a.new_session().await;
    // Node b learns the first session through Redis (it holds it in memory
    // from then on); the second one it has never seen.
    let seen_on_b = b.new_session().await;
    assert_eq!(welcome_of(&b, &kicked.token).await, Some(kicked.player_id));
    let _ = seen_on_b;
    let second = a.new_session().await; // never shown to b
    assert_ne!(second.player_id, kicked.player_id);

    let res = a
        .client()
        .post(a.url("/admin/kick"))
        .insert_header(("Authorization", "Bearer admin-key"))
        .send_json(&serde_json::json!({"player_id": kicked.player_id}))
        .await
        .expect("kick");
    assert_eq!(res.status().as_u16(), 202);

    // Everywhere, the kicked player's token is void: on the node that took
    // the kick, on the node that held it in memory (control message) and
    // through Redis.
    crate::support::eventually(
        "the kicked token to be refused on every node",
        std::time::Duration::from_secs(10),
        || async {
            let on_a = welcome_of(&a, &kicked.token).await;
            let on_b = welcome_of(&b, &kicked.token).await;
            (on_a.is_none() && on_b.is_none()).then_some(())
        },
    )
    .await;
    // A third node that never saw it resolves it from Redis only: refused.
    let c = node("c");
    assert_eq!(welcome_of(&c, &kicked.token).await, None);
    // Others are untouched.
    assert_eq!(welcome_of(&c, &spared.token).await, Some(spared.player_id));
    // The kicked player may come back with a new session.
    assert!(welcome_of(&c, &a.new_session().await.token).await.is_some());
}
