//! API integration tests: the real server on port 0, over real HTTP, against a database of its own per test.

mod admin;
mod auth;
mod bad_input;
mod batch;
mod callbacks;
mod cancel_and_list;
mod contract;
mod expired;
mod get_job;
mod group_commit;
mod helpers;
mod honest_headers;
mod idempotency;
mod overload;
mod queues;
mod schedule;
mod standards;
mod submit_job;
mod waiting;
