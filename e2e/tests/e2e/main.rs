//! The whole chain, with the real processes.

mod callbacks;
mod cdp;
mod chaos;
mod cli;
mod client;
mod config;
mod crash;
mod dashboard;
mod fleets;
mod hostile;
mod lifecycle;
mod membership;
mod pollers;
mod read_your_writes;
mod tls;
mod topics;
