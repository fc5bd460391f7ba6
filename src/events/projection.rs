//! The projection: the state obtained by folding every event in order.
//!
//! Readers take an `Arc<State>` and never wait on a writer; the EventLog actor is
//! the only writer and swaps a new state in after each committed batch.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::Event;

/// Everything replay knows. Serialized into snapshots (see `store::eventlog`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Sequence number of the last event folded in (0: none).
    pub last_seq: u64,
    pub engine: EngineState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    pub id: Option<String>,
    /// How many times a daemon took over this data root.
    pub starts: u64,
    /// Starts that found the previous daemon had not stopped cleanly.
    pub unclean_restarts: u64,
    /// Whether a daemon is running (its start was recorded and its stop was not).
    pub running: bool,
    pub last_start_version: Option<String>,
    pub last_start_time_ns: u64,
}

impl State {
    /// Folds one committed event into the state.
    pub fn apply(&mut self, seq: u64, time_ns: u64, event: &Event) {
        self.last_seq = seq;
        let engine = &mut self.engine;
        match event {
            Event::EngineInitialized { id } => {
                // The first identity wins: a second one can only come from a bug, and
                // changing the ID under running clients would be worse than ignoring it.
                if engine.id.is_none() {
                    engine.id = Some(id.clone());
                }
            }
            Event::DaemonStarted { version, .. } => {
                if engine.running {
                    engine.unclean_restarts += 1;
                }
                engine.starts += 1;
                engine.running = true;
                engine.last_start_version = Some(version.clone());
                engine.last_start_time_ns = time_ns;
            }
            Event::DaemonStopped { .. } => engine.running = false,
        }
    }
}

/// A shared, swappable view of the current state.
#[derive(Clone, Default)]
pub struct Projection(Arc<RwLock<Arc<State>>>);

impl Projection {
    pub fn new(state: State) -> Self {
        Projection(Arc::new(RwLock::new(Arc::new(state))))
    }

    /// The state as of the last committed event; never blocks on a writer for long.
    pub fn current(&self) -> Arc<State> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn replace(&self, state: Arc<State>) {
        match self.0.write() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }
}
