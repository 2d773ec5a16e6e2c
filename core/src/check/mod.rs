//! What the checks compare and how they report it: `verify`'s statements
//! and verdicts, `diff`'s definitions and drift, `preflight`'s checks and
//! `clone_roles`' statements. The extension runs them on both servers.

pub mod diff;
pub mod preflight;
pub mod roles;
pub mod verify;
