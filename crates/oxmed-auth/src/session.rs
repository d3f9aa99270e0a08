//! Who is calling: a request's `Authorization` header to a [`Caller`] (spec §2), cheaply.
//!
//! A bearer token is verified once and its claims cached by the token's text; the Login it names
//! is cached by id, and every write of a Login, membership, project, client or user drops what it
//! made stale before that write returns, so a revoked Login is refused on the very next request.
//! A cache fill that raced such a write is not kept (a generation counter tells).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use oxmed_access::AccessControl;
use oxmed_access::smart_scope::{Grantee, ScopeGrant, restrict, smart_scopes};
use oxmed_repo::{Change, ProjectView, RequestContext, Scope, parse_stored};

use crate::claims::AccessClaims;
use crate::failure::{AuthFailure, Result};
use crate::identity::{ClientApplication, Login, Project, ProjectMembership, Reference};
use crate::secret::constant_time_eq;
use crate::service::Auth;
use crate::tokens::now_secs;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub login_id: String,
    /// `password`, `client`, ... (Login.authMethod).
    pub auth_method: String,
    /// `User/<id>` or `ClientApplication/<id>`.
    pub user: Reference,
    pub membership: Arc<ProjectMembership>,
    pub project: Arc<Project>,
    pub client_id: Option<String>,
    pub scope: String,
    /// The membership's effective AccessPolicy. One that could not be built (a policy deleted
    /// since sign-in) is an empty policy: it allows nothing.
    pub access: Arc<AccessControl>,
    /// The membership this request acts for (`X-Medplum-On-Behalf-Of`, spec §11): its policy
    /// governs the request, while the caller stays the author.
    pub on_behalf_of: Option<Arc<OnBehalfOf>>,
    /// The projects the caller reads beyond its own (linked projects; every project for a
    /// super admin).
    pub view: ProjectView,
    /// The patient the session is about (SMART launch context), `Patient/<id>`.
    pub patient: Option<String>,
    /// A token with SMART resource scopes: an app acting within them, never with the admin
    /// powers of the member who granted them (admin API, On-Behalf-Of, `$explain`, ...).
    pub scoped: bool,
}

/// A resolved On-Behalf-Of target, shared by the requests that name it.
type Target = Arc<OnBehalfOf>;

/// The target of an On-Behalf-Of request.
#[derive(Debug)]
pub struct OnBehalfOf {
    pub membership: Arc<ProjectMembership>,
    pub access: Arc<AccessControl>,
}

impl Caller {
    pub fn project_id(&self) -> &str {
        self.project.id()
    }

    /// `Practitioner/123`, `ClientApplication/9`: the author of what the caller writes.
    pub fn profile(&self) -> &Reference {
        &self.membership.profile
    }

    pub fn is_project_admin(&self) -> bool {
        self.membership.is_admin() && !self.scoped
    }

    pub fn is_super_admin(&self) -> bool {
        self.project.is_super_admin() && !self.scoped
    }

    /// A project admin or a super admin: who may act for another member or ask why one may
    /// do something.
    pub fn is_admin(&self) -> bool {
        self.is_project_admin() || self.is_super_admin()
    }

    pub fn request_context(&self) -> RequestContext {
        let (access, on_behalf_of) = match &self.on_behalf_of {
            Some(target) => (
                target.access.clone(),
                target.membership.profile.reference.clone(),
            ),
            None => (self.access.clone(), None),
        };
        RequestContext {
            project: self.project.id().to_owned(),
            author: self.membership.profile.reference.clone(),
            access: Some(access),
            on_behalf_of,
            extended: false,
            view: self.view.clone(),
            check_references: self.project.checks_references(),
        }
    }
}

/// Most tokens a cache keeps; past it, expired entries go, and if that is not enough, all.
const MAX_CACHED: usize = 100_000;

/// A usable client and the caller its membership makes.
pub(crate) type ClientEntry = Arc<(ClientApplication, Caller)>;

#[derive(Clone)]
enum Session {
    Active(Arc<Caller>),
    /// Revoked, deleted, or naming what no longer exists.
    Invalid,
}

pub(crate) struct Sessions {
    ttl: Duration,
    /// Seconds a cached Login or client is trusted without being read again (see
    /// `AuthConfig::session_recheck`).
    recheck: i64,
    /// Token text → its verified claims and when the cache entry lapses (seconds).
    tokens: RwLock<HashMap<String, (Arc<AccessClaims>, i64)>>,
    /// Login id → the caller it makes.
    logins: RwLock<HashMap<String, (Session, i64)>>,
    /// Client id → the client and its membership, for Basic authentication.
    clients: RwLock<HashMap<String, (Option<ClientEntry>, i64)>>,
    /// `<project>|<X-Medplum-On-Behalf-Of value>` → the target it names in that project.
    targets: RwLock<HashMap<String, (Option<Target>, i64)>>,
    generation: AtomicU64,
}

const IDENTITY_TYPES: &[&str] = &[
    "ProjectMembership",
    "Project",
    "ClientApplication",
    "User",
    "AccessPolicy",
];

impl Sessions {
    pub(crate) fn new(ttl: Duration, recheck: Duration) -> Sessions {
        Sessions {
            ttl,
            recheck: i64::try_from(recheck.as_secs()).unwrap_or(i64::MAX),
            tokens: RwLock::new(HashMap::new()),
            logins: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            targets: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Called after every committed write.
    pub(crate) fn invalidate(&self, change: &Change) {
        if change.resource_type == "Login" {
            self.generation.fetch_add(1, Ordering::SeqCst);
            write(&self.logins).remove(&change.id);
        } else if IDENTITY_TYPES.contains(&change.resource_type.as_str()) {
            self.generation.fetch_add(1, Ordering::SeqCst);
            write(&self.logins).clear();
            write(&self.clients).clear();
            write(&self.targets).clear();
        }
    }

    /// Drops every verified token: a key they may be signed with was retired.
    pub(crate) fn forget_tokens(&self) {
        write(&self.tokens).clear();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps `value` unless a write invalidated the caches since `generation` was read.
    /// Keeps `value` for at most `recheck` seconds unless a write invalidated the caches since
    /// `generation` was read.
    fn keep<V>(
        &self,
        map: &RwLock<HashMap<String, (V, i64)>>,
        generation: u64,
        key: &str,
        value: V,
    ) {
        let mut m = write(map);
        if self.generation() != generation {
            return;
        }
        if m.len() >= MAX_CACHED {
            m.clear();
        }
        m.insert(key.to_owned(), (value, now_secs() + self.recheck));
    }

    /// A cached value still within its time.
    fn fresh<V: Clone>(map: &RwLock<HashMap<String, (V, i64)>>, key: &str) -> Option<V> {
        read(map)
            .get(key)
            .filter(|(_, until)| *until > now_secs())
            .map(|(v, _)| v.clone())
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned cache is still a consistent map (entries are inserted whole).
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Auth {
    /// The caller of a request with this `Authorization` header; 401 without a valid one.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Caller>> {
        let header = authorization.ok_or(AuthFailure::Unauthorized)?;
        if let Some(token) = strip_scheme(header, "Bearer") {
            return self.authenticate_bearer(token).await;
        }
        if let Some(basic) = strip_scheme(header, "Basic") {
            let (id, secret) = decode_basic(basic).ok_or(AuthFailure::Unauthorized)?;
            return self.authenticate_basic(&id, &secret).await;
        }
        Err(AuthFailure::Unauthorized)
    }

    /// The verified claims of an access token (cached by its text).
    pub(crate) fn verify_access_token(&self, token: &str) -> Result<Arc<AccessClaims>> {
        let now = now_secs();
        if let Some((claims, until)) = read(&self.sessions.tokens).get(token)
            && *until > now
            && claims.exp > now
        {
            return Ok(claims.clone());
        }
        let claims: AccessClaims = self
            .keys()
            .verify(
                token,
                &crate::jwt::VerifyOptions::new(self.config().issuer()),
            )
            .map_err(|_| AuthFailure::Unauthorized)?;
        // An id or refresh token is signed by the same keys; only access tokens carry a scope
        // and a profile.
        if claims.login_id.is_empty() || claims.profile.is_empty() {
            return Err(AuthFailure::Unauthorized);
        }
        // The audience of an access token is the client it was issued to (spec §3.3); a token
        // meant for another audience is not one of ours to honour.
        if claims.aud != claims.client_id {
            return Err(AuthFailure::Unauthorized);
        }
        let claims = Arc::new(claims);
        let ttl = i64::try_from(self.sessions.ttl.as_secs()).unwrap_or(i64::MAX);
        let until = claims.exp.min(now.saturating_add(ttl));
        let mut tokens = write(&self.sessions.tokens);
        if tokens.len() >= MAX_CACHED {
            tokens.retain(|_, (c, until)| *until > now && c.exp > now);
            if tokens.len() >= MAX_CACHED {
                tokens.clear();
            }
        }
        tokens.insert(token.to_owned(), (claims.clone(), until));
        Ok(claims)
    }

    async fn authenticate_bearer(&self, token: &str) -> Result<Arc<Caller>> {
        let claims = match self.verify_access_token(token) {
            Ok(c) => c,
            // Signed by a key this instance has not loaded: another instance may have rotated.
            Err(AuthFailure::Unauthorized)
                if crate::jwt::kid_of(token).is_some_and(|k| !self.keys().has_kid(&k))
                    && self.reload_keys().await? =>
            {
                self.verify_access_token(token)?
            }
            Err(e) => return Err(e),
        };
        let session = Sessions::fresh(&self.sessions.logins, &claims.login_id);
        let session = match session {
            Some(s) => s,
            None => {
                let generation = self.sessions.generation();
                let s = self.load_session(&claims).await?;
                self.sessions.keep(
                    &self.sessions.logins,
                    generation,
                    &claims.login_id,
                    s.clone(),
                );
                s
            }
        };
        match session {
            Session::Active(caller) => Ok(caller),
            Session::Invalid => Err(AuthFailure::Unauthorized),
        }
    }

    async fn load_session(&self, claims: &AccessClaims) -> Result<Session> {
        let repo = self.repo();
        match repo.store().read("Login", &claims.login_id).await {
            Ok(Some(stored)) => {
                if stored.deleted {
                    return Ok(Session::Invalid);
                }
                let login = Login::from_value(parse_stored(&stored)?)?;
                let login_client = login
                    .client
                    .as_ref()
                    .and_then(|c| c.id_of("ClientApplication"));
                if login.is_revoked() || login_client != claims.client_id.as_deref() {
                    return Ok(Session::Invalid);
                }
                let Some(membership_id) = login.membership_id() else {
                    return Ok(Session::Invalid);
                };
                // A membership deleted or made inactive ends its sessions (Medplum answers 410
                // for the first and keeps serving the second).
                let Some((membership, project)) = self
                    .membership_and_project(membership_id)
                    .await?
                    .filter(|(m, _)| m.is_active())
                else {
                    return Ok(Session::Invalid);
                };
                let access = self.session_access(&membership, &project).await?;
                let context = self.launch_context(&login, &membership, &project).await?;
                let scope = login.scope.clone().unwrap_or_default();
                let access = scoped(
                    access,
                    &ScopeGrant {
                        scope: &scope,
                        grantee: Grantee::User,
                        patient: context.patient.as_deref(),
                    },
                );
                let view = self.project_view(&project).await?;
                Ok(Session::Active(Arc::new(Caller {
                    login_id: claims.login_id.clone(),
                    auth_method: login.auth_method.clone(),
                    user: login.user.clone(),
                    membership,
                    project,
                    client_id: claims.client_id.clone(),
                    scope: login.scope.clone().unwrap_or_default(),
                    access,
                    on_behalf_of: None,
                    view,
                    patient: context.patient,
                    scoped: !smart_scopes(&scope).is_empty(),
                })))
            }
            Ok(None) => {
                // Client-credentials Logins are never stored (spec §0: "cache only"); the token
                // names its client, which must still be usable and a member.
                match &claims.client_id {
                    Some(client_id) if *client_id == claims.sub => {
                        match self.client_caller(client_id).await? {
                            Some(found) => {
                                let mut caller = found.1.clone();
                                caller.login_id = claims.login_id.clone();
                                caller.scope = claims.scope.clone();
                                caller.access = scoped(
                                    caller.access,
                                    &ScopeGrant {
                                        scope: &claims.scope,
                                        grantee: Grantee::Client,
                                        patient: None,
                                    },
                                );
                                caller.scoped = !smart_scopes(&claims.scope).is_empty();
                                Ok(Session::Active(Arc::new(caller)))
                            }
                            None => Ok(Session::Invalid),
                        }
                    }
                    _ => Ok(Session::Invalid),
                }
            }
            Err(e) => Err(AuthFailure::Internal(e.to_string())),
        }
    }

    /// The effective policy of a session's membership; an empty one (nothing allowed) when it
    /// cannot be built, so that a policy broken after sign-in fails closed.
    async fn session_access(
        &self,
        membership: &ProjectMembership,
        project: &Project,
    ) -> Result<Arc<AccessControl>> {
        Ok(match self.access_control(membership, project).await? {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(membership = %membership.id(), error = %e, "access policy cannot be built: the session may do nothing");
                Arc::new(AccessControl::new(
                    oxmed_access::EffectivePolicy::default(),
                    false,
                    false,
                ))
            }
        })
    }

    /// A membership and its project, both existing.
    pub(crate) async fn membership_and_project(
        &self,
        membership_id: &str,
    ) -> Result<Option<(Arc<ProjectMembership>, Arc<Project>)>> {
        let repo = self.repo();
        let Some(m) = repo.system_read("ProjectMembership", membership_id).await? else {
            return Ok(None);
        };
        let membership = ProjectMembership::from_value(parse_stored(&m)?)?;
        let Some(project_id) = membership.project_id() else {
            return Ok(None);
        };
        let Some(p) = repo.system_read("Project", project_id).await? else {
            return Ok(None);
        };
        let project = Project::from_value(parse_stored(&p)?)?;
        Ok(Some((Arc::new(membership), Arc::new(project))))
    }

    /// A usable client and the caller its membership makes (login id and scope left for the
    /// caller to fill), cached.
    pub(crate) async fn client_caller(&self, client_id: &str) -> Result<Option<ClientEntry>> {
        if let Some(found) = Sessions::fresh(&self.sessions.clients, client_id) {
            return Ok(found);
        }
        let generation = self.sessions.generation();
        let found = self.load_client_caller(client_id).await?;
        self.sessions
            .keep(&self.sessions.clients, generation, client_id, found.clone());
        Ok(found)
    }

    /// A usable client, member or not (a client used for sign-in needs no membership of its own).
    pub(crate) async fn usable_client(&self, client_id: &str) -> Result<Option<ClientApplication>> {
        let Some(stored) = self
            .repo()
            .system_read("ClientApplication", client_id)
            .await?
        else {
            return Ok(None);
        };
        let client = ClientApplication::from_value(parse_stored(&stored)?)?;
        Ok(client.is_usable().then_some(client))
    }

    async fn load_client_caller(&self, client_id: &str) -> Result<Option<ClientEntry>> {
        let repo = self.repo();
        let Some(stored) = repo.system_read("ClientApplication", client_id).await? else {
            return Ok(None);
        };
        let client = ClientApplication::from_value(parse_stored(&stored)?)?;
        if !client.is_usable() {
            return Ok(None);
        }
        let user = format!("ClientApplication/{client_id}");
        let Some((m, _)) = repo
            .system_find_one(
                Scope::Project(&stored.project),
                "ProjectMembership",
                &[("user", &user)],
            )
            .await?
        else {
            return Ok(None);
        };
        let Some((membership, project)) = self
            .membership_and_project(&m.id)
            .await?
            .filter(|(m, _)| m.is_active())
        else {
            return Ok(None);
        };
        let access = self.session_access(&membership, &project).await?;
        let view = self.project_view(&project).await?;
        let caller = Caller {
            login_id: String::new(),
            auth_method: "client".into(),
            user: Reference::to("ClientApplication", client_id),
            membership,
            project,
            client_id: Some(client_id.to_owned()),
            scope: "openid".into(),
            access,
            on_behalf_of: None,
            view,
            patient: None,
            scoped: false,
        };
        Ok(Some(Arc::new((client, caller))))
    }

    /// HTTP Basic with a client's id and current secret (spec §2): a transient client Login,
    /// the membership's access unreduced.
    async fn authenticate_basic(&self, id: &str, secret: &str) -> Result<Arc<Caller>> {
        if id.is_empty() || secret.is_empty() {
            return Err(AuthFailure::Unauthorized);
        }
        let found = self
            .client_caller(id)
            .await?
            .ok_or(AuthFailure::Unauthorized)?;
        let (client, caller) = &*found;
        let current = client.secret.as_deref().unwrap_or("");
        if current.is_empty() || !constant_time_eq(current, secret) {
            return Err(AuthFailure::Unauthorized);
        }
        let mut caller = caller.clone();
        caller.login_id = oxmed_repo::meta::new_id();
        Ok(Arc::new(caller))
    }
}

impl Auth {
    /// The caller acting for the membership an `X-Medplum-On-Behalf-Of` value names (spec §11):
    /// `ProjectMembership/<id>` or a profile reference, in the caller's project. Only project
    /// admins and super admins may; anything else, or a target that is not an active member of
    /// the caller's project, is 403.
    pub async fn on_behalf_of(&self, caller: &Caller, value: &str) -> Result<Arc<Caller>> {
        if !caller.is_admin() {
            return Err(AuthFailure::Forbidden);
        }
        let key = format!("{}|{}", caller.project_id(), value.trim());
        let target = match Sessions::fresh(&self.sessions.targets, &key) {
            Some(t) => t,
            None => {
                let generation = self.sessions.generation();
                let t = self.load_target(caller, value.trim()).await?;
                self.sessions
                    .keep(&self.sessions.targets, generation, &key, t.clone());
                t
            }
        };
        let target = target.ok_or(AuthFailure::Forbidden)?;
        let mut acting = caller.clone();
        acting.on_behalf_of = Some(target);
        Ok(Arc::new(acting))
    }

    async fn load_target(&self, caller: &Caller, value: &str) -> Result<Option<Target>> {
        let project = caller.project_id();
        // The header is the caller's: anything but a `Type/id` reference names no member.
        let Some((target_type, target_id)) = value.split_once('/') else {
            return Ok(None);
        };
        if oxmed_repo::Repository::check_type(target_type).is_err()
            || oxmed_repo::Repository::check_id(target_id).is_err()
        {
            return Ok(None);
        }
        let membership_id = match value.strip_prefix("ProjectMembership/") {
            Some(id) => id.to_owned(),
            None => {
                let found = self
                    .repo()
                    .system_find_one(
                        Scope::Project(project),
                        "ProjectMembership",
                        &[("profile", value)],
                    )
                    .await;
                match found? {
                    Some((m, _)) => m.id,
                    None => return Ok(None),
                }
            }
        };
        let Some((membership, target_project)) =
            self.membership_and_project(&membership_id).await?
        else {
            return Ok(None);
        };
        if target_project.id() != project || !membership.is_active() {
            return Ok(None);
        }
        match self.access_control(&membership, &target_project).await? {
            Ok(access) => Ok(Some(Arc::new(OnBehalfOf { membership, access }))),
            Err(_) => Ok(None),
        }
    }
}

/// A session's policy narrowed by its SMART scopes (`smart_scope::restrict`); the same policy
/// when the scope has none.
fn scoped(access: Arc<AccessControl>, grant: &ScopeGrant<'_>) -> Arc<AccessControl> {
    if smart_scopes(grant.scope).is_empty() {
        return access;
    }
    let policy = restrict(access.policy().clone(), grant);
    // No admin powers under scopes (e.g. setting `meta.accounts` explicitly).
    Arc::new(AccessControl::new(policy, false, false))
}

/// The credentials after `Scheme ` (scheme matched case-insensitively, RFC 9110 §11.1).
pub(crate) fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.split_once(' ')?;
    let rest = rest.trim();
    (s.eq_ignore_ascii_case(scheme) && !rest.is_empty()).then_some(rest)
}

/// The credentials of an `Authorization: Basic ...` header.
pub fn strip_basic(header: &str) -> Option<&str> {
    strip_scheme(header, "Basic")
}

/// `base64(id:secret)` → (id, secret).
pub fn decode_basic(credentials: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_basic_credentials() {
        assert_eq!(strip_scheme("Bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("Bearer ", "Bearer"), None);
        assert_eq!(strip_scheme("Bearerabc", "Bearer"), None);
        assert_eq!(strip_scheme("Basic abc", "Bearer"), None);
        let enc = base64::engine::general_purpose::STANDARD.encode("id:se:cret");
        assert_eq!(
            decode_basic(&enc),
            Some(("id".to_owned(), "se:cret".to_owned()))
        );
        let enc = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert_eq!(decode_basic(&enc), None);
        assert_eq!(decode_basic("%%%"), None);
    }
}
