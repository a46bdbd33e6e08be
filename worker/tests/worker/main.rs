//! Worker integration tests: the worker loop in-process against real Postgres (a database per test) and the real
//! broker (a topic and consumer group per test). Dispatch messages are produced directly, as the relay would.

mod cancel;
mod delivery;
mod failures;
mod helpers;
mod leases;
mod packed;
mod poison;
mod priority;
mod queues;
mod slots;
mod trace;
