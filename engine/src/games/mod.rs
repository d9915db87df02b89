//! Built-in games, each defined by data with a version, each with its exact
//! theoretical return.

pub mod slot;
