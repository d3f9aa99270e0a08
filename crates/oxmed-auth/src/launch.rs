//! SMART launch context (SMART App Launch 2.2 "launch context"; spec §0 SmartAppLaunch,
//! §3.2): the patient and encounter a Login is about, from the SmartAppLaunch it names (an EHR
//! launch, or the patient a user picked in a standalone launch) or else from the user's own
//! Patient profile.

use oxmed_repo::parse_stored;
use serde_json::Value;

use crate::failure::{AuthFailure, Result};
use crate::identity::{Login, ProjectMembership};
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
    /// another project counts for nothing), else the member's own Patient profile.
    pub async fn launch_context(
        &self,
        login: &Login,
        membership: &ProjectMembership,
    ) -> Result<LaunchContext> {
        if let Some(launch) = login
            .launch
            .as_ref()
            .and_then(|l| l.id_of("SmartAppLaunch"))
            && let Some(stored) = self.repo().system_read("SmartAppLaunch", launch).await?
            && !stored.deleted
            && Some(stored.project.as_str()) == membership.project_id()
        {
            let value = parse_stored(&stored)?;
            let patient = reference_of(&value, "/patient/reference", "Patient");
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
