//! The whole chain, with the real processes.

mod crash;
mod lifecycle;
mod read_your_writes;
