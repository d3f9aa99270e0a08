//! Integer keys of projects (`project_keys`), which index rows carry instead of project ids.
//!
//! A key is created in a transaction of its own and committed before any write uses it, and only
//! then cached: a key handed out inside a transaction that rolls back could be given again to
//! another project, and its rows would then belong to both.

use std::collections::HashMap;

use parking_lot::RwLock;

#[derive(Default)]
pub(crate) struct ProjectKeys {
    known: RwLock<HashMap<String, i64>>,
}

impl ProjectKeys {
    pub(crate) fn get(&self, project: &str) -> Option<i64> {
        self.known.read().get(project).copied()
    }

    /// Records a key read from (or committed to) the database.
    pub(crate) fn remember(&self, project: &str, key: i64) {
        self.known.write().insert(project.to_owned(), key);
    }
}
