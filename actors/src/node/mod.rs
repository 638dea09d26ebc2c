//! The node: the [`Registry`] that supervises every match and validation
//! cache, the [`Engine`] handle the HTTP layer and connections use, the
//! [`Directory`] of live matches, and the application of operator control
//! messages. Imports `session/` and everything below it; nothing below
//! imports it.

pub mod control;
pub mod directory;
pub mod engine;
pub mod error;
pub mod registry;

pub use directory::{Directory, MatchEntry};
pub use engine::{Engine, Located};
pub use error::{EngineError, LocateError};
pub use registry::{Registry, RegistryStats};
