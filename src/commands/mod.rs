//! One module per subcommand. Commands own the control flow; lower layers take whole batches.

pub mod audit;
pub mod down;
pub mod env;
pub mod init;
pub mod rotate;
pub mod status;
pub mod up;
pub mod verify;
