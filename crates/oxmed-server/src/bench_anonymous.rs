//! Only in a build with the `bench-anonymous` feature, which `bench/run` makes for its
//! `read-anonymous` scenario and nothing else: a request without credentials acts as the
//! super admin's client, so that a benchmark can measure what authentication costs a read.
//! Never deploy such a build; it says so on start.

use std::sync::Arc;

use base64::Engine;
use oxmed_auth::Caller;
use oxmed_repo::Scope;
use tokio::sync::OnceCell;

use crate::AppState;

static CALLER: OnceCell<Option<Arc<Caller>>> = OnceCell::const_new();

/// The super admin client's caller, resolved once.
pub async fn caller(state: &AppState) -> Option<Arc<Caller>> {
    CALLER
        .get_or_init(|| async {
            let (_, client) = state
                .repo
                .system_find_one(
                    Scope::AllProjects,
                    "ClientApplication",
                    &[("name:exact", "Super Admin Client")],
                )
                .await
                .ok()??;
            let id = client["id"].as_str()?;
            let secret = client["secret"].as_str()?;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            state
                .auth
                .authenticate(Some(&format!("Basic {basic}")))
                .await
                .ok()
        })
        .await
        .clone()
}
