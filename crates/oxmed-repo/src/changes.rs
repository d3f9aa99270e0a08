//! Who hears about committed writes: the caches of the server (Logins, policies, clients, keys)
//! drop what a write made stale before the response of that write is sent.

use std::sync::{Arc, RwLock};

use oxmed_store::WriteOutcome;

/// One new version, committed.
#[derive(Debug, Clone)]
pub struct Change {
    pub project: String,
    pub resource_type: String,
    pub id: String,
    pub deleted: bool,
}

pub type Listener = Arc<dyn Fn(&Change) + Send + Sync>;

#[derive(Clone, Default)]
pub(crate) struct Listeners {
    all: Arc<RwLock<Vec<Listener>>>,
}

impl Listeners {
    pub(crate) fn add(&self, listener: Listener) {
        // A poisoned lock only means a listener panicked while it was being added; the list
        // itself is intact.
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        all.push(listener);
    }

    pub(crate) fn notify(&self, outcomes: &[WriteOutcome]) {
        let all = self.all.read().unwrap_or_else(|e| e.into_inner());
        if all.is_empty() {
            return;
        }
        for outcome in outcomes.iter().filter(|o| o.written) {
            let Some(r) = &outcome.resource else { continue };
            let change = Change {
                project: r.project.clone(),
                resource_type: r.resource_type.clone(),
                id: r.id.clone(),
                deleted: r.deleted,
            };
            for listener in all.iter() {
                listener(&change);
            }
        }
    }
}
