//! `redis-cluster-bootstrap restore`: placeholder until the RDB reader lands.

use crate::config::Settings;
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// Runs `restore`.
pub async fn run(_settings: Settings, _shutdown: Shutdown) -> Result<()> {
    Err(Error::Internal("restore is not built yet".into()))
}
