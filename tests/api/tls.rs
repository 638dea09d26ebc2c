//! TLS to managed services: a throwaway redis-server and Postgres started
//! with certificates this test makes (its own CA), reached by a node with
//! `rediss://` and `sslmode=require` and the CA file; and refused with the
//! wrong CA.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use matchd::config::Secret;
use matchd_actors::history::store::{Store, StoreConfig};
use matchd_actors::Catalog;

use crate::pg::TestPg;
use crate::support::{eventually, free_port, spawn_app_with, TempDir, WAIT};

/// A CA and a server certificate for 127.0.0.1 and localhost, signed by it:
/// (CA pem, server cert pem, server key pem).
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(ok.success(), "openssl {args:?}");
    };
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("ext.cnf"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-out",
        &s(&cert),
        "-days",
        "2",
        "-extfile",
        &s(&ext),
    ]);
    (ca, cert, key)
}

struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_redis(cert: &Path, key: &Path, ca: &Path) -> TlsRedis {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(cert)
        .arg("--tls-key-file")
        .arg(key)
        .arg("--tls-ca-cert-file")
        .arg(ca)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs");
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server (TLS) did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsRedis { child, port }
}

#[actix_rt::test]
async fn a_node_reaches_redis_over_tls_with_its_ca_and_refuses_another() {
    let dir = TempDir::new("tls-redis");
    let (ca, cert, key) = certificates(dir.path(), "redis");
    let (other_ca, _, _) = certificates(dir.path(), "other");
    let redis = tls_redis(&cert, &key, &ca);
    let node = |id: &'static str, ca: PathBuf| {
        let url = format!("rediss://127.0.0.1:{}", redis.port);
        spawn_app_with(
            move |c| {
                c.redis_url = Some(Secret(url));
                c.redis_ca_file = Some(ca);
                c.engine.node_id = id.into();
            },
            Catalog::builtin(),
        )
    };
    let good = node("tls-a", ca.clone());
    eventually("the node registered over TLS", WAIT, || async {
        let (status, body) = good.get_json("/v1/nodes").await;
        (status == 200 && body["nodes"][0]["node_id"] == "tls-a").then_some(())
    })
    .await;
    // A match replicates over the same connection.
    let id = good.create_match("sandbox").await;
    let mut p = good.player(matchd_protocol::codec::Encoding::Json).await;
    assert!(matches!(
        p.join(id).await,
        matchd_protocol::ServerMsg::Joined { .. }
    ));
    p.mark(1).await;

    // Trusting another CA: the certificate is refused, nothing registers.
    let bad = node("tls-b", other_ca);
    eventually("the wrong CA to be refused", WAIT, || async {
        let (_, body) = bad.get_json("/ready").await;
        let error = body["checks"]["redis"]["last_error"].as_str()?.to_string();
        (body["checks"]["redis"]["registered"] == false).then_some(error)
    })
    .await;
    let (_, body) = good.get_json("/v1/nodes").await;
    assert_eq!(body["nodes"].as_array().map(Vec::len), Some(1), "{body}");
}

#[actix_rt::test]
async fn the_history_store_reaches_postgres_over_tls_and_verifies_it() {
    let dir = TempDir::new("tls-pg");
    let (ca, cert, key) = certificates(dir.path(), "pg");
    let (other_ca, _, _) = certificates(dir.path(), "other");
    let pg = TestPg::init();
    let (server_cert, server_key) = (pg.dir().join("server.pem"), pg.dir().join("server.key"));
    std::fs::copy(&cert, &server_cert).expect("copy cert");
    std::fs::copy(&key, &server_key).expect("copy key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&server_key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    pg.give(&server_cert);
    pg.give(&server_key);
    pg.start_server_with(&format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        server_cert.display(),
        server_key.display()
    ));
    let store = |ca: PathBuf| {
        Store::new(&StoreConfig {
            url: format!("{}?sslmode=verify-full", pg.url()),
            pool_size: 1,
            timeout: Duration::from_secs(3),
            rate_anonymous: true,
            ca_file: Some(ca),
        })
        .expect("store")
    };
    let good = store(ca);
    assert_eq!(good.statement_timeout().await.expect("over TLS"), "3s");
    // The server saw a TLS connection from matchd.
    let db = pg.client().await;
    let tls: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND application_name = 'matchd'",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert_eq!(tls, 1);
    // Another CA: the certificate is refused.
    assert!(store(other_ca).statement_timeout().await.is_err());
}
