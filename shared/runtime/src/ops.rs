//! The operations endpoint every background service serves on its own port: `/metrics` (Prometheus text format),
//! `/healthz` (the process is up) and `/readyz` (Postgres answers).

use std::net::{SocketAddr, TcpListener};

use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::RunQueryDsl;
use prometheus::{Encoder, TextEncoder};

use ackbox_db::db::PgPool;

/// Builds a service's registry as its metrics are created: each metric goes through [`Registrar::add`] on its way
/// into the metrics struct, so none can be created and forgotten in a separate list. The process collector (RSS,
/// CPU, open fds) every service reports is added first.
pub struct Registrar {
    registry: prometheus::Registry,
}

impl Registrar {
    /// A registry with the process collector.
    pub fn new() -> Self {
        let registry = prometheus::Registry::new();
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("one process collector");
        Self { registry }
    }

    /// Registers `metric` and hands it back.
    pub fn add<C: prometheus::core::Collector + Clone + 'static>(&self, metric: C) -> C {
        self.registry.register(Box::new(metric.clone())).expect("unique metric names");
        metric
    }

    /// The registry, holding everything added.
    pub fn finish(self) -> prometheus::Registry {
        self.registry
    }
}

impl Default for Registrar {
    fn default() -> Self {
        Self::new()
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &prometheus::Registry) -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for the text format.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

struct OpsState {
    registry: prometheus::Registry,
    pool: PgPool,
}

async fn metrics(state: web::Data<OpsState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(render(&state.registry))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let pool = state.pool.clone();
    let ok = web::block(move || pool.get().ok().and_then(|mut c| diesel::sql_query("SELECT 1").execute(&mut c).ok()))
        .await
        .ok()
        .flatten()
        .is_some();
    if ok {
        HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "database unreachable"}))
    }
}

/// Binds `bind` and spawns the ops server on the current runtime; returns the bound address (useful with port 0).
pub fn spawn(bind: &str, registry: prometheus::Registry, pool: PgPool) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let state = web::Data::new(OpsState { registry, pool });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    log::info!("ops endpoints on http://{addr} (/metrics, /healthz, /readyz)");
    Ok(addr)
}
