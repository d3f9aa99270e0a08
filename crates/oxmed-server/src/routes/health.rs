use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;

/// Medplum's shape: `{ ok, version, <backend>: true }`.
pub async fn healthcheck(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "ok": true,
        "version": env!("CARGO_PKG_VERSION"),
        state.repo.store().backend_name(): true,
    }))
}
