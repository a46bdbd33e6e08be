#![doc = include_str!("../README.md")]

pub mod callbacks;
pub mod config;
pub mod db;
pub mod instance_lock;
pub mod migrate;
pub mod models;
pub mod outbox;
pub mod prepared;
pub mod retention;
pub mod schema;
pub mod state;
pub mod vacuum;
