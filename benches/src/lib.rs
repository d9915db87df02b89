//! Benchmarks and load generators. Each benchmark is a library function
//! returning a report, so the test suite can run it briefly (it cannot rot)
//! while its binary runs it at full size for the figures.

pub mod engine_rounds;
pub mod floor;
pub mod memory;
