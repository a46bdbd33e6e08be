#![doc = include_str!("../README.md")]

pub mod envelope;
pub mod priority;
pub mod status;
pub mod trace;
