//! FHIR interactions as AccessPolicy names them, and the shallow match of an entry (spec §1.2).

use crate::policy::ResourceEntry;

/// The interactions an AccessPolicy entry can list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    Read,
    Vread,
    Update,
    Delete,
    History,
    Create,
    Search,
}

impl Interaction {
    pub const ALL: [Interaction; 7] = [
        Interaction::Read,
        Interaction::Vread,
        Interaction::Update,
        Interaction::Delete,
        Interaction::History,
        Interaction::Create,
        Interaction::Search,
    ];

    /// What a `readonly` entry allows.
    pub const READ_ONLY: [Interaction; 4] = [
        Interaction::Search,
        Interaction::Read,
        Interaction::History,
        Interaction::Vread,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::Update => "update",
            Interaction::Delete => "delete",
            Interaction::History => "history",
            Interaction::Create => "create",
            Interaction::Search => "search",
        }
    }

    pub fn parse(code: &str) -> Option<Interaction> {
        Interaction::ALL.into_iter().find(|i| i.as_str() == code)
    }

    pub fn is_read(self) -> bool {
        Interaction::READ_ONLY.contains(&self)
    }
}

/// The types a `*` entry never covers, and which the project-admin rules govern (spec §0, §1.1).
pub const PROJECT_ADMIN_TYPES: [&str; 4] = [
    "Project",
    "ProjectMembership",
    "User",
    "UserSecurityRequest",
];

/// Types only super admins may touch at all (spec §0).
pub const PROTECTED_TYPES: [&str; 3] = ["DomainConfiguration", "JsonWebKey", "Login"];

impl ResourceEntry {
    /// The shallow match of spec §1.2: the type (or `*`, which never covers a project-admin
    /// type) and the interaction.
    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        let type_ok = self.resource_type == resource_type
            || (self.resource_type == "*" && !PROJECT_ADMIN_TYPES.contains(&resource_type));
        if !type_ok {
            return false;
        }
        match &self.interaction {
            Some(list) => list.contains(&interaction),
            None => !self.readonly || interaction.is_read(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t: &str) -> ResourceEntry {
        ResourceEntry {
            resource_type: t.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names_round_trip() {
        for i in Interaction::ALL {
            assert_eq!(Interaction::parse(i.as_str()), Some(i));
        }
        assert_eq!(Interaction::parse("patch"), None);
    }

    #[test]
    fn shallow_match() {
        let patient = entry("Patient");
        assert!(patient.allows("Patient", Interaction::Delete));
        assert!(!patient.allows("Observation", Interaction::Read));
        let star = entry("*");
        assert!(star.allows("Observation", Interaction::Create));
        for t in PROJECT_ADMIN_TYPES {
            assert!(!star.allows(t, Interaction::Read), "{t}");
        }
        let readonly = ResourceEntry {
            readonly: true,
            ..entry("Patient")
        };
        assert!(readonly.allows("Patient", Interaction::Search));
        assert!(!readonly.allows("Patient", Interaction::Update));
        let listed = ResourceEntry {
            interaction: Some(vec![Interaction::Create]),
            readonly: true,
            ..entry("Patient")
        };
        // An explicit list wins over `readonly`.
        assert!(listed.allows("Patient", Interaction::Create));
        assert!(!listed.allows("Patient", Interaction::Read));
    }
}
