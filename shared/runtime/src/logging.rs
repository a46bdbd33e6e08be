//! Logging for every binary: env_logger, as text for a terminal (the default) or, with `ACKBOX_LOG_FORMAT=json`,
//! one JSON object per line for a log pipeline.
//!
//! A JSON line has `ts` (RFC 3339, UTC, µs), `level`, `target` and `msg`, plus the structured fields the call site
//! attached with `log`'s key-values, such as `job_id`, `attempt`, `trace_id` and `request_id`
//! (`log::info!(job_id:% = id, attempt; "...")`). Numbers and booleans stay JSON numbers and booleans. In text the
//! fields are left out: the message already names them. Levels and filters come from `RUST_LOG` (default `info`).

use std::io::Write;

use log::kv::{Key, Value, VisitSource};

/// The environment variable that picks the format.
pub const LOG_FORMAT_VAR: &str = "ACKBOX_LOG_FORMAT";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's human format (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `ACKBOX_LOG_FORMAT` holds something other than `text` or `json`.
#[derive(Debug, thiserror::Error)]
#[error("{LOG_FORMAT_VAR} must be \"text\" or \"json\", not {0:?}")]
pub struct LogFormatError(pub String);

impl LogFormat {
    /// Reads `ACKBOX_LOG_FORMAT` (unset or empty: text).
    pub fn from_env() -> Result<Self, LogFormatError> {
        match std::env::var(LOG_FORMAT_VAR).unwrap_or_default().trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(LogFormatError(other.to_string())),
        }
    }
}

/// The logging and tracing settings every service reads, as clap arguments so that `--help` lists them; they are
/// read from the environment by [`LogFormat::from_env`], env_logger and opentelemetry-otlp themselves, before the
/// command line is parsed.
#[derive(Clone, Debug, clap::Parser)]
pub struct ObservabilityArgs {
    /// Log format: text (for a terminal) or json (one object per line: ts, level, target, msg, job_id, ...).
    #[arg(long, env = LOG_FORMAT_VAR, default_value = "text", value_name = "ACKBOX_LOG_FORMAT")]
    pub log_format: String,
    /// Log filter, env_logger's syntax (info, warn,ackbox_worker=debug, ...).
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "RUST_LOG")]
    pub rust_log: String,
    /// OTLP/HTTP collector for spans, e.g. http://otel-collector:4318 (unset or empty: no export). The other
    /// standard OTEL_* variables apply too.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

/// Initialises env_logger in `format`, with `info` as the default level (`RUST_LOG` overrides).
pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => {
            builder.format_key_values(|_, _| Ok(()));
        }
        LogFormat::Json => {
            builder.format(|buf, record| {
                let line = json_line(record, &chrono::Utc::now());
                writeln!(buf, "{line}")
            });
        }
    }
    let _ = builder.try_init();
}

/// One record as a JSON object: `ts`, `level`, `target`, `msg`, then its key-values (never overriding those four).
pub fn json_line(record: &log::Record<'_>, now: &chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let mut fields = Fields(serde_json::Map::new());
    fields.0.insert("ts".into(), now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
    fields.0.insert("level".into(), record.level().as_str().into());
    fields.0.insert("target".into(), record.target().into());
    fields.0.insert("msg".into(), record.args().to_string().into());
    // A visitor that never fails: a key-value source cannot make the line fail.
    let _ = record.key_values().visit(&mut fields);
    serde_json::Value::Object(fields.0)
}

struct Fields(serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let key = key.as_str();
        if matches!(key, "ts" | "level" | "target" | "msg") {
            return Ok(());
        }
        let v = if let Some(b) = value.to_bool() {
            b.into()
        } else if let Some(i) = value.to_i64() {
            i.into()
        } else if let Some(u) = value.to_u64() {
            u.into()
        } else if let Some(n) = value.to_f64().and_then(serde_json::Number::from_f64) {
            n.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.to_string(), v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_key_values_becomes_one_json_object_with_typed_fields() {
        let id = "0190e1c8-0000-7000-8000-000000000001";
        let kvs: &[(&str, Value<'_>)] = &[
            ("job_id", Value::from(id)),
            ("attempt", Value::from(2i32)),
            ("ms", Value::from(1.5f64)),
            ("msg", Value::from("not this")),
        ];
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T03:00:00.123456Z").expect("ts").to_utc();
        let line = json_line(
            &log::Record::builder()
                .level(log::Level::Warn)
                .target("ackbox_worker::completer")
                .args(format_args!("job {id} attempt 2 failed"))
                .key_values(&kvs)
                .build(),
            &now,
        );
        assert_eq!(
            line,
            serde_json::json!({
                "ts": "2026-11-26T03:00:00.123456Z", "level": "WARN", "target": "ackbox_worker::completer",
                "msg": format!("job {id} attempt 2 failed"), "job_id": id, "attempt": 2, "ms": 1.5,
            })
        );
        assert!(!line.to_string().contains('\n'), "one line");
    }

    #[test]
    fn the_format_is_text_or_json_and_nothing_else() {
        for (raw, want) in
            [("", Some(LogFormat::Text)), ("json", Some(LogFormat::Json)), ("JSON ", Some(LogFormat::Json))]
        {
            std::env::set_var(LOG_FORMAT_VAR, raw);
            assert_eq!(LogFormat::from_env().ok(), want, "{raw:?}");
        }
        std::env::set_var(LOG_FORMAT_VAR, "yaml");
        assert!(LogFormat::from_env().is_err());
        std::env::remove_var(LOG_FORMAT_VAR);
    }
}
