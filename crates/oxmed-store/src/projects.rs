//! Which projects a caller's reads reach (spec §8): its own, the projects its project links to
//! (each for the types it exports), or every project (super admins). Writes always go to one
//! project; this is about what searches, reads and history may return.

use std::sync::Arc;

/// A project that the caller's project links to (`Project.link`), and the types it exports
/// (`exportedResourceType`; `None`: every type).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkedProject {
    pub id: String,
    pub exported: Option<Vec<String>>,
}

impl LinkedProject {
    /// Whether resources of `resource_type` of this project are visible through the link. The
    /// linked Project resource itself always is (spec §8: a search for `Project` includes every
    /// linked project).
    pub fn exports(&self, resource_type: &str) -> bool {
        resource_type == "Project"
            || self
                .exported
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == resource_type))
    }

    /// The types a statement must keep this project's rows to, if it exports only some.
    fn limited_to(&self) -> Option<Vec<String>> {
        let types = self.exported.as_ref()?;
        let mut types = types.clone();
        if !types.iter().any(|t| t == "Project") {
            types.push("Project".to_owned());
        }
        Some(types)
    }
}

/// A project of a view besides the caller's own, and the types it is limited to (`None`: all).
pub(crate) type Other<'a> = (&'a str, Option<Vec<String>>);

/// Beyond the caller's own project, what its reads reach.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ProjectView {
    /// Its own project only.
    #[default]
    Own,
    /// Its own project and, read-only, the projects it links to.
    Linked(Arc<[LinkedProject]>),
    /// Every project (members of a super-admin project).
    All,
}

impl ProjectView {
    /// Whether a resource of `resource_type` stored in `project` is in the view of a caller
    /// whose own project is `own`.
    pub fn sees(&self, own: &str, project: &str, resource_type: &str) -> bool {
        if project == own {
            return true;
        }
        match self {
            ProjectView::Own => false,
            ProjectView::All => true,
            ProjectView::Linked(links) => links
                .iter()
                .any(|l| l.id == project && l.exports(resource_type)),
        }
    }

    /// The projects of the view besides `own` with the types each is limited to; `None` for
    /// every project.
    pub(crate) fn others(&self) -> Option<Vec<Other<'_>>> {
        match self {
            ProjectView::Own => Some(Vec::new()),
            ProjectView::All => None,
            ProjectView::Linked(links) => Some(
                links
                    .iter()
                    .map(|l| (l.id.as_str(), l.limited_to()))
                    .collect(),
            ),
        }
    }
}

/// A view as the SQL of a search sees it: project keys instead of ids.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProjectFilter {
    /// The keys a row's project must be one of; `None`: any project.
    pub keys: Option<Vec<i64>>,
    /// Keys among `keys` whose rows are visible only for some types.
    pub limited: Vec<(i64, Vec<String>)>,
}

impl ProjectFilter {
    pub(crate) fn one(key: i64) -> ProjectFilter {
        ProjectFilter {
            keys: Some(vec![key]),
            limited: Vec::new(),
        }
    }

    pub(crate) fn all() -> ProjectFilter {
        ProjectFilter {
            keys: None,
            limited: Vec::new(),
        }
    }

    /// From the keys found for the view's projects (`None`: a project that never stored
    /// anything, so nothing of it to see). `None` when no project of the view has a key.
    pub(crate) fn of(found: Vec<(Option<i64>, Option<Vec<String>>)>) -> Option<ProjectFilter> {
        let mut keys = Vec::with_capacity(found.len());
        let mut limited = Vec::new();
        for (key, types) in found {
            let Some(key) = key else { continue };
            if keys.contains(&key) {
                continue;
            }
            keys.push(key);
            if let Some(types) = types {
                limited.push((key, types));
            }
        }
        (!keys.is_empty()).then_some(ProjectFilter {
            keys: Some(keys),
            limited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linked(exported: Option<&[&str]>) -> ProjectView {
        ProjectView::Linked(Arc::from(vec![LinkedProject {
            id: "b".into(),
            exported: exported.map(|e| e.iter().map(|t| t.to_string()).collect()),
        }]))
    }

    #[test]
    fn a_view_sees_its_own_project_its_exports_and_nothing_else() {
        assert!(ProjectView::Own.sees("a", "a", "Patient"));
        assert!(!ProjectView::Own.sees("a", "b", "Patient"));
        assert!(ProjectView::All.sees("a", "b", "Patient"));
        let v = linked(Some(&["Questionnaire"]));
        assert!(v.sees("a", "b", "Questionnaire"));
        assert!(v.sees("a", "b", "Project"));
        assert!(!v.sees("a", "b", "Patient"));
        assert!(!v.sees("a", "c", "Questionnaire"));
        assert!(linked(None).sees("a", "b", "Patient"));
    }

    #[test]
    fn a_filter_drops_projects_without_keys_and_keeps_limits() {
        assert_eq!(ProjectFilter::of(vec![(None, None)]), None);
        let f = ProjectFilter::of(vec![
            (Some(1), None),
            (None, None),
            (
                Some(2),
                Some(vec!["Questionnaire".into(), "Project".into()]),
            ),
        ])
        .expect("keys");
        assert_eq!(f.keys, Some(vec![1, 2]));
        assert_eq!(f.limited.len(), 1);
    }
}
