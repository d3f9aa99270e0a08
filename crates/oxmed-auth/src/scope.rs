//! OAuth2 scope strings: space-separated words.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A scope as requested or granted, kept as the original string.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// Wraps a scope string as received.
    pub fn new(scope: impl Into<String>) -> Self {
        Self(scope.into())
    }

    /// The scope string as received.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The individual scope words, skipping empty ones from repeated spaces.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.0.split_whitespace()
    }

    /// See [`has_offline`].
    pub fn has_offline(&self) -> bool {
        has_offline(&self.0)
    }

    /// See [`contains_email`].
    pub fn contains_email(&self) -> bool {
        contains_email(&self.0)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Scope {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Scope {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Whether a refresh token is asked for: the word `offline` or `offline_access`.
pub fn has_offline(scope: &str) -> bool {
    scope
        .split_whitespace()
        .any(|w| w == "offline" || w == "offline_access")
}

/// Whether the ID token should carry `email`.
///
/// A substring test, not a word test, because that is what Medplum does
/// (`scope.includes('email')`), and tokens must carry the same claims.
pub fn contains_email(scope: &str) -> bool {
    scope.contains("email")
}

pub use oxmed_access::smart_scope::SmartScope;

/// Whether every SMART resource scope in `requested` is within one in `granted`; other words
/// (`openid`, `offline_access`, ...) are not checked, as in Medplum. Beyond Medplum, a grant
/// with resource scopes cannot be narrowed to none: a scope without any means the membership's
/// whole access (spec §12.2), which would widen it.
pub fn narrows(requested: &str, granted: &str) -> bool {
    let granted: Vec<SmartScope<'_>> = granted
        .split_whitespace()
        .filter_map(SmartScope::parse)
        .collect();
    let requested: Vec<SmartScope<'_>> = requested
        .split_whitespace()
        .filter_map(SmartScope::parse)
        .collect();
    if requested.is_empty() && !granted.is_empty() {
        return false;
    }
    requested
        .iter()
        .all(|r| granted.iter().any(|g| r.within(g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_keeps_within_the_granted_scopes() {
        let granted =
            "openid patient/Observation.rs user/Patient.cruds patient/Condition.rs?category=x";
        assert!(narrows("openid patient/Observation.r", granted));
        assert!(narrows(
            "patient/Observation.read user/Patient.cu offline_access",
            granted
        ));
        assert!(narrows("patient/Condition.s?category=x", granted));
        assert!(
            !narrows("openid", granted),
            "no resource scope left would be the whole policy"
        );
        assert!(!narrows("", granted));
        assert!(narrows("openid", "openid offline_access"));
        assert!(
            !narrows("patient/Observation.c", granted),
            "a letter not granted"
        );
        assert!(!narrows("user/Observation.r", granted), "another context");
        assert!(!narrows("patient/Patient.r", granted), "another type");
        assert!(!narrows("patient/Condition.r", granted), "query dropped");
        assert!(
            !narrows("patient/Condition.r?category=y", granted),
            "query changed"
        );
        assert!(!narrows("patient/*.r", granted), "wildcard is wider");
    }

    #[test]
    fn offline_must_be_a_whole_word() {
        assert!(has_offline("openid offline"));
        assert!(has_offline("offline_access openid"));
        assert!(has_offline("openid\toffline_access\n"));
        assert!(!has_offline("openid"));
        assert!(!has_offline("openid offline_accessx"));
        assert!(!has_offline("notoffline"));
        assert!(!has_offline("offline:read"));
        assert!(!has_offline(""));
    }

    #[test]
    fn email_is_a_substring_test() {
        assert!(contains_email("openid email"));
        assert!(contains_email("openid user/email.read"));
        assert!(!contains_email("openid profile"));
        assert!(!contains_email("openid EMAIL"));
    }

    #[test]
    fn words_skip_repeated_spaces() {
        let s = Scope::new("  openid   profile offline ");
        assert_eq!(
            s.words().collect::<Vec<_>>(),
            ["openid", "profile", "offline"]
        );
        assert!(s.has_offline());
        assert!(!s.contains_email());
        assert_eq!(s.as_str(), "  openid   profile offline ");
        assert_eq!(Scope::new("").words().count(), 0);
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let s = Scope::from("openid email");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"openid email\"");
        let back: Scope = serde_json::from_str("\"openid email\"").unwrap();
        assert_eq!(back, s);
        assert!(back.contains_email());
        assert_eq!(back.to_string(), "openid email");
    }
}
