//! The whole chain, with the real processes.

mod cli;
mod chaos;
mod client;
mod crash;
mod dashboard;
mod lifecycle;
mod read_your_writes;
