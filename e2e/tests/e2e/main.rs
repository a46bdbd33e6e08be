//! The whole chain, with the real processes.

mod lifecycle;
mod read_your_writes;
