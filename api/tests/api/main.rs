//! API integration tests: the real server on port 0, over real HTTP, against a database of its own per test.

mod bad_input;
mod get_job;
mod helpers;
mod submit_job;
