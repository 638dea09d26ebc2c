//! The JavaScript client's Node tests and the browser tests (`tests/web/`,
//! `node --test`), run against this build's `matchd` binary, so that
//! `cargo test --workspace` covers them. They need Node.js, the npm
//! packages of `tests/web` (`npm ci --prefix tests/web`) and Debian's
//! Chromium at /usr/bin/chromium; `.ci/run` installs all three.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest the whole JavaScript suite may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(600);

#[test]
fn javascript_client_and_browser_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    for package in ["ws", "playwright-core"] {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "tests/web lacks the npm package {package}: run `npm ci --prefix tests/web` (.ci/run does)"
        );
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
    );
    // Its own process group, so a hung run is killed with every process
    // the test runner started.
    let mut child = Command::new("node")
        .process_group(0)
        .args([
            "--test",
            "--test-concurrency=1",
            "client.test.mjs",
            "browser.test.mjs",
        ])
        .current_dir(&dir)
        .env("MATCHD_BIN", env!("CARGO_BIN_EXE_matchd"))
        .spawn()
        .expect("node runs (Node.js 20 or newer on PATH)");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-9", "--", &group]).status();
            let _ = child.wait();
            panic!("the JavaScript tests ran longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "the JavaScript tests failed ({status}); their output is above"
    );
}
