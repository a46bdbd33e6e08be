//! All SQL that touches the `outbox` table, in two parts: the queue the api, the worker and the relay use
//! ([`queue`]), and the reads and replays operators use ([`inspect`]). Both are re-exported here.

pub mod inspect;
pub mod queue;

pub use inspect::*;
pub use queue::*;
