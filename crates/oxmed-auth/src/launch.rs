//! SMART launch context (SMART App Launch 2.2 "launch context"; spec §0 SmartAppLaunch,
//! §3.2): the patient and encounter a Login is about, from the SmartAppLaunch it names (an EHR
//! launch, or the patient a user picked in a standalone launch) or else from the user's own
//! Patient profile.

use oxmed_repo::{RepoError, RequestContext, SearchOptions, parse_stored};
use serde_json::Value;

use crate::failure::{AuthFailure, Result};
use crate::identity::{Login, Project, ProjectMembership, Reference};
use crate::login::LoginResult;
use crate::service::Auth;

/// What a session is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchContext {
    /// `Patient/<id>`.
    pub patient: Option<String>,
    /// `Encounter/<id>`.
    pub encounter: Option<String>,
    /// Whether the patient came from a launch (an EHR shows the app inside its own patient
    /// banner then), not from the user being that patient.
    pub launched: bool,
}

impl LaunchContext {
    /// `Patient/123` → `123`, as the token response gives it.
    pub fn patient_id(&self) -> Option<&str> {
        self.patient.as_deref()?.strip_prefix("Patient/")
    }

    pub fn encounter_id(&self) -> Option<&str> {
        self.encounter.as_deref()?.strip_prefix("Encounter/")
    }
}

/// A reference of `resource_type` at `pointer` of a SmartAppLaunch.
fn reference_of(launch: &Value, pointer: &str, resource_type: &str) -> Option<String> {
    launch
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|r| {
            r.strip_prefix(resource_type)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        })
        .map(str::to_owned)
}

impl Auth {
    /// The SmartAppLaunch a login names, if it is one of `project` (or of any project when the
    /// login has none yet); 404 otherwise (spec §4.1: "launchId must be an existing
    /// SmartAppLaunch"), so that a launch of another project can never set this one's context.
    pub async fn check_launch(&self, launch: &str, project: Option<&str>) -> Result<()> {
        if uuid::Uuid::parse_str(launch).is_err() {
            return Err(AuthFailure::NotFound);
        }
        match self.repo().system_read("SmartAppLaunch", launch).await? {
            Some(stored) if !stored.deleted && project.is_none_or(|p| p == stored.project) => {
                Ok(())
            }
            _ => Err(AuthFailure::NotFound),
        }
    }

    /// The context of a Login of `membership`: its launch's patient and encounter (a launch of
    /// another project, or about a patient the member may not read, counts for nothing), else
    /// the member's own Patient profile.
    pub async fn launch_context(
        &self,
        login: &Login,
        membership: &ProjectMembership,
        project: &Project,
    ) -> Result<LaunchContext> {
        if let Some(launch) = login
            .launch
            .as_ref()
            .and_then(|l| l.id_of("SmartAppLaunch"))
            && let Some(stored) = self.repo().system_read("SmartAppLaunch", launch).await?
            && !stored.deleted
            && stored.project == project.id()
        {
            let value = parse_stored(&stored)?;
            let patient = reference_of(&value, "/patient/reference", "Patient");
            if let Some(p) = &patient
                && !self.member_reads_patient(membership, project, p).await?
            {
                tracing::warn!(
                    launch,
                    "a launch's patient the member may not read: no context"
                );
                return Ok(LaunchContext::default());
            }
            if patient.is_some() {
                return Ok(LaunchContext {
                    patient,
                    encounter: reference_of(&value, "/encounter/reference", "Encounter"),
                    launched: true,
                });
            }
        }
        Ok(LaunchContext {
            patient: membership
                .profile
                .id_of("Patient")
                .map(|id| format!("Patient/{id}")),
            encounter: None,
            launched: false,
        })
    }
}

/// Most patients the standalone picker lists at once.
const PICKER_PAGE: usize = 20;

/// Whether a Login still needs the patient of a standalone launch: it asks for `launch/patient`
/// and has no launch (SMART 2.2: the authorization server asks the user to pick one).
pub fn wants_patient(login: &Login) -> bool {
    login.launch.is_none()
        && login
            .scope
            .as_deref()
            .is_some_and(|s| s.split_whitespace().any(|w| w == "launch/patient"))
}

/// A patient as the picker shows it: id and a readable name.
fn listed(patient: &Value) -> Value {
    let id = patient["id"].as_str().unwrap_or_default();
    let name = patient["name"]
        .as_array()
        .and_then(|names| names.first())
        .map(|n| {
            let mut parts: Vec<&str> = n["given"]
                .as_array()
                .map(|g| g.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(f) = n["family"].as_str() {
                parts.push(f);
            }
            if parts.is_empty() {
                n["text"].as_str().unwrap_or_default().to_owned()
            } else {
                parts.join(" ")
            }
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("Patient/{id}"));
    serde_json::json!({"id": id, "name": name, "birthDate": patient.get("birthDate")})
}

impl Auth {
    /// The FHIR request context of a Login's member: what their own requests may see (their
    /// policy, not narrowed by the app's scopes: the picker asks whom the app may be about).
    async fn member_context(&self, login: &Login) -> Result<RequestContext> {
        if login.is_revoked() {
            return Err(AuthFailure::invalid("Login revoked"));
        }
        if login.is_granted() {
            return Err(AuthFailure::invalid("Login granted"));
        }
        if !wants_patient(login) {
            return Err(AuthFailure::invalid("Patient not requested"));
        }
        let Some(membership_id) = login.membership_id() else {
            return Err(AuthFailure::invalid("Login profile not set"));
        };
        // The second factor comes before anything the member may see.
        if self.mfa_pending(login).await? {
            return Err(AuthFailure::invalid("Login requires MFA"));
        }
        let Some((membership, project)) = self.membership_and_project(membership_id).await? else {
            return Err(AuthFailure::invalid("Profile not found"));
        };
        self.member_request_context(&membership, &project).await
    }

    /// What a member's own FHIR requests may see: their policy (unscoped) and project view.
    async fn member_request_context(
        &self,
        membership: &ProjectMembership,
        project: &Project,
    ) -> Result<RequestContext> {
        let access = match self.access_control(membership, project).await? {
            Ok(a) => a,
            Err(e) => return Err(AuthFailure::invalid(e.to_string())),
        };
        Ok(RequestContext {
            project: project.id().to_owned(),
            author: membership.profile.reference.clone(),
            access: Some(access),
            on_behalf_of: None,
            extended: false,
            view: self.project_view(project).await?,
            check_references: false,
        })
    }

    /// Whether the member may read `Patient/<id>` (a launch's patient must be one they see).
    async fn member_reads_patient(
        &self,
        membership: &ProjectMembership,
        project: &Project,
        patient: &str,
    ) -> Result<bool> {
        let Some(id) = patient.strip_prefix("Patient/") else {
            return Ok(false);
        };
        let ctx = match self.member_request_context(membership, project).await {
            Ok(ctx) => ctx,
            Err(AuthFailure::Invalid(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.repo().read(&ctx, "Patient", id).await {
            Ok(_) => Ok(true),
            Err(
                RepoError::NotFound(_)
                | RepoError::Gone(_)
                | RepoError::Forbidden
                | RepoError::Invalid(_),
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a Login at its code must first pick the patient of a standalone launch: it asks
    /// for one and its member is not a Patient (whose own record is the context).
    pub(crate) async fn needs_patient_choice(&self, login: &Login) -> Result<bool> {
        if !wants_patient(login) {
            return Ok(false);
        }
        let Some(membership_id) = login.membership_id() else {
            return Ok(false);
        };
        Ok(match self.membership_and_project(membership_id).await? {
            Some((m, _)) => m.profile.id_of("Patient").is_none(),
            None => false,
        })
    }

    /// The patients a Login's member may see, for the standalone launch picker: the first
    /// [`PICKER_PAGE`], those whose name starts with `name` when given.
    pub async fn launch_patients(&self, login_id: &str, name: Option<&str>) -> Result<Vec<Value>> {
        let (login, _) = self.login_for_update(login_id).await?;
        let ctx = self.member_context(&login).await?;
        let mut params = vec![("_count".to_owned(), PICKER_PAGE.to_string())];
        if let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) {
            params.push(("name".to_owned(), n.to_owned()));
        }
        let options = SearchOptions {
            base_url: self.config().url("fhir/R4/"),
            lenient: false,
            max_count: PICKER_PAGE,
        };
        let (_, found) = match self
            .repo()
            .search(&ctx, Some("Patient"), &params, None, &options)
            .await
        {
            Ok(found) => found,
            // A member who may not search patients has none to pick.
            Err(RepoError::Forbidden) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::with_capacity(found.matches.len());
        for r in &found.matches {
            out.push(listed(&parse_stored(r)?));
        }
        Ok(out)
    }

    /// The standalone launch's choice (`launch/patient`): a patient the member may read
    /// becomes the Login's launch context (a SmartAppLaunch of the member's project), and the
    /// login goes on to its code.
    pub async fn choose_patient(&self, login_id: &str, patient_id: &str) -> Result<LoginResult> {
        let (mut login, version) = self.login_for_update(login_id).await?;
        if login.launch.is_some() {
            return Err(AuthFailure::invalid("Patient already chosen"));
        }
        let ctx = self.member_context(&login).await?;
        match self.repo().read(&ctx, "Patient", patient_id).await {
            Ok(_) => {}
            Err(
                RepoError::NotFound(_)
                | RepoError::Gone(_)
                | RepoError::Forbidden
                | RepoError::Invalid(_),
            ) => return Err(AuthFailure::invalid("Patient not found")),
            Err(e) => return Err(e.into()),
        }
        let launch = crate::records::create(
            self.repo(),
            &ctx.project,
            serde_json::json!({"resourceType": "SmartAppLaunch",
                "patient": {"reference": format!("Patient/{patient_id}")}}),
        )
        .await?;
        let launch_id = launch["id"].as_str().unwrap_or_default();
        login.launch = Some(Reference::to("SmartAppLaunch", launch_id));
        self.login_result(login, &version, true).await
    }
}
