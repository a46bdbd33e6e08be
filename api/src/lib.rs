#![doc = include_str!("../README.md")]

pub mod config;
pub mod document;
pub mod error;
pub mod routes;

use std::net::TcpListener;

use ackbox_shared::db::PgPool;
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::config::ApiConfig;

/// Shared state of every request handler.
pub struct AppState {
    /// Database pool; used only from `web::block`, never on the executor threads.
    pub pool: PgPool,
    /// Process configuration.
    pub config: ApiConfig,
}

/// Builds the HTTP server on an already bound listener (tests bind port 0). The server handles SIGTERM itself: it
/// stops accepting and lets in-flight requests finish.
pub fn run(listener: TcpListener, pool: PgPool, config: ApiConfig) -> std::io::Result<Server> {
    let workers = config.http_workers;
    let max_body = config.max_body_bytes;
    let state = web::Data::new(AppState { pool, config });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default().limit(max_body).content_type_required(true).error_handler(error::json_error),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| error::ApiError::BadRequest(format!("bad path: {e}")).into()),
            )
            .configure(routes::configure)
    })
    .workers(workers)
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}
