//! Logging and the Prometheus recorder.

use std::io::Write;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;

/// Sets up env_logger: plain text for people, one JSON object per line
/// (level, target, message and the key-values) for production.
pub fn init_logging(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let mut obj = serde_json::Map::new();
            obj.insert("ts".into(), buf.timestamp_millis().to_string().into());
            obj.insert("level".into(), record.level().as_str().into());
            obj.insert("target".into(), record.target().into());
            obj.insert("message".into(), record.args().to_string().into());
            let mut kv = JsonKv(&mut obj);
            let _ = record.key_values().visit(&mut kv);
            writeln!(buf, "{}", serde_json::Value::Object(obj))
        });
    }
    let _ = builder.try_init();
}

struct JsonKv<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for JsonKv<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let v = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_string(), v);
        Ok(())
    }
}

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Batch size buckets (records per batch).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 50000.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle. Later
/// calls (several test servers in one process) share it.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(matchd_actors::metrics::WRITER_BATCH_ROWS.into()),
                        BATCH_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (embedding): render an empty local one.
                Err(e) => {
                    log::warn!("metrics recorder not installed: {e}");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            matchd_actors::metrics::describe();
            handle
        })
        .clone()
}
