//! The parts of pgclone that need neither a server nor a network: what a
//! caller asked (options, conninfo), the source catalog as plain structs and
//! the queries that read it, the DDL rendered from them, the plan of a clone
//! and how its progress reads. Everything here is tested with plain
//! `cargo test`; the extension crate runs it against real servers.

pub mod catalog;
pub mod check;
pub mod conninfo;
pub mod copy;
pub mod ddl;
pub mod error;
pub mod mask;
pub mod options;
pub mod plan;
pub mod progress;
pub mod request;
pub mod sensitive;
pub mod sqltext;
pub mod wire;
