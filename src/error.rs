//! Errors a caller branches on. `main` maps an [`EnvironmentError`] anywhere in a chain to exit
//! code 2; everything else that fails is exit code 1.

/// The environment failed (engine unreachable, image missing, port taken, AWS unreachable, a
/// stack that cannot be reached from here): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvironmentError(pub String);
