//! The simulation harness: a seeded workload of realistic traffic (a
//! heavy-tailed player population, a game mix, stakes, deposits and
//! withdrawals, bonuses, sweepstakes players, arrival patterns) and the
//! faults real integrations produce (retried requests, rollbacks that
//! arrive before their bet, duplicate wins, bets on expired sessions), run
//! against the engine in-process; at the end, the books: every wallet's
//! balance recomputed from the events, money conserved, no transaction
//! applied twice, every reply as the workload expected.
//!
//! `casino sim` is its command line. Key items: [`Scenario`],
//! [`inprocess::run`], [`Report`].

pub mod books;
pub mod cluster;
pub mod inprocess;
pub mod network;
pub mod plot;
pub mod replication;
pub mod report;
pub mod scenario;
pub mod tcp;

pub use inprocess::Progress;
pub use report::Report;
pub use scenario::Scenario;
