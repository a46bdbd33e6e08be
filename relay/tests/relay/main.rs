//! Relay integration tests: real Postgres (a database per test) and the real broker (a topic per test).

mod broker_down;
mod helpers;
mod long_transaction;
mod no_skip;
mod ops;
mod priority;
mod publish;
mod rescue_load;
mod retention;
mod undeliverable;
mod vacuum;
