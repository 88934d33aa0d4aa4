//! Protocol-independent building blocks: limits and the typed error every codec returns.
//!
//! Nothing here does I/O or reads a clock.

mod error;
pub mod limits;

pub use error::{Error, ErrorCode};
pub use limits::Limits;
