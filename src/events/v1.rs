//! Schema version 1. Frozen once released: add variants only at the end.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Written once, when a data root is first used: the engine's identity
    /// (`ID` in `GET /info`), persisted across restarts by replay.
    EngineInitialized { id: String },
    /// A berthd process took over the data root.
    DaemonStarted { version: String, pid: u32 },
    /// A berthd process stopped cleanly (SIGTERM/SIGINT). A start without a stop
    /// before it means the previous daemon died.
    DaemonStopped { pid: u32 },
}
