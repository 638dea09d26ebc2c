use matchd_protocol::codec::Encoding;

use matchd_actors::Catalog;

use crate::support::{spawn_app, spawn_app_with};

#[actix_rt::test]
async fn sessions_matches_and_errors_over_http() {
    let app = spawn_app();

    let a = app.new_session().await;
    let b = app.new_session().await;
    assert_eq!(a.token.len(), 32);
    assert_ne!(a.token, b.token);
    assert_ne!(a.player_id, b.player_id);

    let (status, body) = app
        .post_json("/v1/matches", serde_json::json!({"ruleset": "sandbox"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "creating a match needs a session"
    );
    let id = app.create_match("sandbox").await;
    let (status, body) = app.get_json(&format!("/v1/matches/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ruleset"], "sandbox");
    assert_eq!(body["max_seats"], 8);
    assert_eq!(body["node_id"], "test-node");

    let (status, body) = app.get_json("/v1/matches").await;
    assert_eq!(status, 200);
    assert!(body["matches"]
        .as_array()
        .expect("list")
        .iter()
        .any(|m| m["match_id"] == id));

    let checks: &[(&str, u16, &str)] = &[
        ("/v1/matches/12345", 404, "match_not_found"),
        ("/v1/matches/abc", 400, "invalid_match_id"),
        ("/nowhere", 404, "not_found"),
        ("/v1/sessions", 405, "method_not_allowed"),
        ("/v1/ws", 401, "unauthorized"),
        ("/v1/ws?token=forged", 401, "unauthorized"),
    ];
    for (path, want_status, want_code) in checks {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, *want_status, "{path}: {body}");
        assert_eq!(body["error"]["code"], *want_code, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }

    let (status, body) = app
        .post_json_as_player("/v1/matches", serde_json::json!({"ruleset": "chess"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_ruleset")),
        "{body}"
    );
    let (status, body) = app
        .post_json_as_player("/v1/matches", serde_json::json!({"rules": 1}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{body}"
    );

    // A valid token but no upgrade headers.
    let (status, body) = app.get_json(&format!("/v1/ws?token={}", a.token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("websocket_required")),
        "{body}"
    );
    let (status, body) = app
        .get_json(&format!("/v1/ws?token={}&encoding=xml", a.token))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_encoding")),
        "{body}"
    );
}

#[actix_rt::test]
async fn bearer_header_authenticates_the_websocket() {
    let app = spawn_app();
    let s = app.new_session().await;
    let res = app
        .client()
        .ws(app.url("/v1/ws"))
        .bearer_auth(&s.token)
        .connect()
        .await;
    assert!(res.is_ok(), "bearer token accepted");
    let res = app
        .client()
        .ws(app.url("/v1/ws"))
        .bearer_auth("wrong")
        .connect()
        .await;
    assert!(
        res.is_err(),
        "unknown bearer token refused before the upgrade"
    );
}

#[actix_rt::test]
async fn health_ready_and_metrics() {
    let app = spawn_app();
    let (status, body) = app.get_json("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["checks"]["registry"]["ok"], true);
    assert_eq!(body["checks"]["registry"]["arbiters"], 2);

    // Some traffic so every family has a sample.
    let mut p = app.player(Encoding::Json).await;
    let _joined = p.quick_join("sandbox").await;
    p.ping(1).await;
    let text = app.metrics().await;
    for name in [
        "matchd_connections_open",
        "matchd_matches_live",
        "matchd_frames_in_total",
        "matchd_frames_out_total",
        "matchd_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
}

#[actix_rt::test]
async fn a_session_tells_where_its_player_sits() {
    use matchd_protocol::{ClientMsg, ServerMsg};

    use crate::support::WsClient;

    let app = spawn_app();
    let s = app.new_session().await;
    let path = format!("/v1/sessions/current?token={}", s.token);
    let (status, body) = app.get_json(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["player_id"], s.player_id);
    assert_eq!(body["match"], serde_json::Value::Null);

    let id = app.create_match("sandbox").await;
    let mut ws = WsClient::connect(&app, &s.token, Encoding::Json).await;
    assert!(matches!(ws.recv().await, ServerMsg::Welcome { .. }));
    assert!(matches!(
        ws.join(id).await,
        ServerMsg::Joined { seat: 0, .. }
    ));
    let (_, body) = app.get_json(&path).await;
    assert_eq!(body["match"]["match_id"], id);
    assert_eq!(body["match"]["seat"], 0);
    assert_eq!(body["match"]["node_id"], "test-node");
    assert!(body["match"]["url"]
        .as_str()
        .is_some_and(|u| u.ends_with("/v1/ws")));

    ws.send(&ClientMsg::Leave).await;
    ws.recv_until(|m| matches!(m, ServerMsg::Left { .. }).then_some(()))
        .await;
    let (_, body) = app.get_json(&path).await;
    assert_eq!(body["match"], serde_json::Value::Null, "{body}");
    let (status, _) = app.get_json("/v1/sessions/current?token=forged").await;
    assert_eq!(status, 401);
}

/// Browsers send `Origin` on WebSocket upgrades and no preflight: a page of
/// another site is refused, the node's own pages and the listed origins
/// are not, clients without `Origin` are not affected. CORS answers the
/// HTTP API's preflights for the listed origins only.
#[actix_rt::test]
async fn origins_are_checked_on_upgrades_and_cors_follows_the_same_list() {
    let app = spawn_app_with(
        |c| {
            c.allowed_origins =
                matchd::origins::AllowedOrigins::parse("https://play.example").expect("parses")
        },
        Catalog::builtin(),
    );
    let token = app.new_session().await.token;
    let host = app.url("").trim_start_matches("http://").to_string();
    let upgrade = |origin: Option<String>| {
        let mut req = app.client().ws(app.url(&format!("/v1/ws?token={token}")));
        if let Some(o) = origin {
            req = req.origin(o);
        }
        async move {
            match req.connect().await {
                Ok((res, _)) => res.status().as_u16(),
                Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
                Err(e) => panic!("upgrade failed: {e}"),
            }
        }
    };
    assert_eq!(upgrade(None).await, 101, "no Origin: not a browser");
    assert_eq!(
        upgrade(Some(format!("http://{host}"))).await,
        101,
        "own page"
    );
    assert_eq!(upgrade(Some("https://play.example".into())).await, 101);
    assert_eq!(upgrade(Some("https://evil.example".into())).await, 403);
    let (status, body) = {
        let mut res = app
            .client()
            .get(app.url(&format!("/v1/ws?token={token}")))
            .insert_header(("Origin", "https://evil.example"))
            .send()
            .await
            .expect("GET");
        let body = res.body().await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );

    let preflight = |origin: &'static str| {
        let req = app
            .client()
            .request(awc::http::Method::OPTIONS, app.url("/v1/sessions"))
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header(("Access-Control-Request-Headers", "content-type"));
        async move {
            let res = req.send().await.expect("OPTIONS");
            let allow = res
                .headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (res.status().is_success(), allow)
        }
    };
    assert_eq!(
        preflight("https://play.example").await,
        (true, Some("https://play.example".to_string()))
    );
    let (_, allow) = preflight("https://evil.example").await;
    assert_eq!(allow, None, "no CORS grant for an unlisted origin");

    let res = app
        .client()
        .get(app.url("/health"))
        .send()
        .await
        .expect("GET");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            res.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }
}

/// `GET /v1/matches` is paged by id; the live-match counts follow
/// creations without rescanning.
#[actix_rt::test]
async fn match_lists_are_paged_and_counted() {
    let app = spawn_app();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.create_match("sandbox").await);
    }
    ids.sort_unstable();
    let mut seen: Vec<u64> = Vec::new();
    let mut after = 0u64;
    let mut pages = 0;
    loop {
        let (status, body) = app
            .get_json(&format!("/v1/matches?limit=2&after={after}"))
            .await;
        assert_eq!(status, 200, "{body}");
        let page: Vec<u64> = body["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .map(|m| m["match_id"].as_u64().expect("id"))
            .collect();
        assert!(page.len() <= 2);
        seen.extend(&page);
        pages += 1;
        match body["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
        assert!(pages < 10, "paging never ends");
    }
    assert_eq!(seen, ids, "every match once, in id order");
    assert_eq!(pages, 3);
    let (status, body) = app.get_json("/v1/matches?limit=5000").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    // The node's counts (kept as matches start and stop; the gauge of
    // the same name is process-wide, shared by this test crate's nodes).
    let (_, ready) = app.get_json("/ready").await;
    assert_eq!(
        ready["checks"]["registry"]["matches"]["sandbox"], 5,
        "{ready}"
    );
    assert_eq!(
        ready["checks"]["registry"]["matches"]["tactics"], 0,
        "{ready}"
    );
}

/// Session creation is limited per client IP: over the budget, 429
/// `rate_limited` with `Retry-After`; a forged `X-Forwarded-For` from an
/// untrusted peer changes nothing; reads are not limited.
#[actix_rt::test]
async fn sessions_are_rate_limited_per_client_ip() {
    let app = spawn_app_with(|c| c.limits.sessions_per_min = 3, Catalog::builtin());
    for _ in 0..3 {
        let (status, _) = app.post_json("/v1/sessions", serde_json::json!({})).await;
        assert_eq!(status, 201);
    }
    let mut res = app
        .client()
        .post(app.url("/v1/sessions"))
        .insert_header(("X-Forwarded-For", "198.51.100.7"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value =
        serde_json::from_slice(&res.body().await.expect("body")).expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    let (status, _) = app.get_json("/v1/matches").await;
    assert_eq!(status, 200, "reads are not limited");
}

/// `MATCHD_ADMIN_BIND`: `/admin/*` and `/metrics` answer only on the admin
/// listener; the public one says 404, and serves everything else as before.
#[actix_rt::test]
async fn admin_and_metrics_live_only_on_the_admin_listener_when_one_is_set() {
    let app = crate::support::spawn_app_with(
        |c| {
            c.admin_bind = Some("127.0.0.1:0".into());
            c.admin_key = Some(matchd::config::Secret("k".into()));
        },
        matchd_actors::Catalog::builtin(),
    );
    let admin = app.admin_base.clone().expect("an admin listener");
    let client = app.client();
    let status = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(app.url("/metrics")).await, 404);
    assert_eq!(status(format!("{admin}/metrics")).await, 200);
    let drain = |base: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/admin/kick"))
                .insert_header(("Authorization", "Bearer k"))
                .send_json(&serde_json::json!({"player_id": 1}))
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(drain(app.base.clone()).await, 404);
    assert_eq!(drain(admin.clone()).await, 202);
    assert_eq!(status(app.url("/health")).await, 200);
}

/// Match creation and WebSocket upgrades are limited per client IP, and
/// behind a trusted proxy the client IP is the one `X-Forwarded-For`
/// names: each forwarded client has its own budget, and one over its
/// budget leaves the other untouched.
#[actix_rt::test]
async fn matches_and_upgrades_are_limited_per_client_ip_named_by_a_trusted_proxy() {
    let app = spawn_app_with(
        |c| {
            c.limits.matches_per_min = 2;
            c.limits.upgrades_per_min = 3;
            c.limits.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
        },
        Catalog::builtin(),
    );
    let token = app.new_session().await.token;
    let create = |client_ip: &'static str| {
        let request = app
            .client()
            .post(app.url(&format!("/v1/matches?token={token}")))
            .insert_header(("X-Forwarded-For", client_ip));
        async move {
            let mut res = request
                .send_json(&serde_json::json!({ "ruleset": "sandbox" }))
                .await
                .expect("POST /v1/matches");
            let body: serde_json::Value =
                serde_json::from_slice(&res.body().await.expect("body")).expect("json");
            (res.status().as_u16(), body["error"]["code"].clone())
        }
    };
    for _ in 0..2 {
        assert_eq!(create("198.51.100.1").await.0, 201);
    }
    assert_eq!(
        create("198.51.100.1").await,
        (429, serde_json::json!("rate_limited"))
    );
    assert_eq!(
        create("198.51.100.2").await.0,
        201,
        "another client's budget"
    );

    let upgrade = |client_ip: &'static str| {
        let request = awc::Client::new()
            .ws(app.url(&format!("/v1/ws?token={token}")))
            .header("X-Forwarded-For", client_ip);
        crate::support::upgrade_status_of(request)
    };
    for _ in 0..3 {
        assert_eq!(upgrade("198.51.100.3").await, 101);
    }
    assert_eq!(
        upgrade("198.51.100.3").await,
        429,
        "over the upgrade budget"
    );
    assert_eq!(
        upgrade("198.51.100.4").await,
        101,
        "another client's budget"
    );
}
