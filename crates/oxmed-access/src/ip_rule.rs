//! IP access rules (spec §9): the rules of every policy of the membership, in order; the first
//! that matches the client address decides, and an address no rule matches is allowed.
//!
//! A rule's value matches as Medplum matches it — `*`, the address itself, or a string prefix
//! of it (`8.8.` matches `8.8.8.8`) — and, beyond Medplum, as a CIDR block (`10.0.0.0/8`,
//! `2001:db8::/32`), IPv4 and IPv6 alike. Addresses are compared in their canonical text
//! (`Ipv6Addr`'s compressed form), so the prefix of an IPv6 address is one of that form.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::policy::{IpAccessRule, IpAction};

/// Whether `rule` covers `addr`.
pub fn matches(rule: &IpAccessRule, addr: IpAddr) -> bool {
    let value = rule.value.trim();
    if value == "*" {
        return true;
    }
    if value.contains('/') {
        // A value that looks like a block but is not one (the policy reader refuses such
        // values; this is the last line) fails closed: a block rule blocks everyone, an allow
        // rule allows no one.
        return match value.parse::<IpNet>() {
            Ok(net) => net.contains(&addr),
            Err(_) => rule.action == IpAction::Block,
        };
    }
    let text = addr.to_string();
    !value.is_empty() && text.starts_with(value)
}

/// Whether the rules let a request from `addr` through. An unknown address (no socket, as in
/// an in-process call) is not judged, as in Medplum.
pub fn allowed(rules: &[IpAccessRule], addr: Option<IpAddr>) -> bool {
    let Some(addr) = addr else {
        return true;
    };
    match rules.iter().find(|r| matches(r, addr)) {
        Some(r) => r.action == IpAction::Allow,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: &str, action: IpAction) -> IpAccessRule {
        IpAccessRule {
            name: None,
            value: value.to_owned(),
            action,
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn first_matching_rule_decides() {
        let rules = vec![
            rule("8.8.", IpAction::Allow),
            rule("10.0.0.0/8", IpAction::Allow),
            rule("2001:db8::/32", IpAction::Allow),
            rule("*", IpAction::Block),
        ];
        assert!(allowed(&rules, ip("8.8.8.8")));
        assert!(!allowed(&rules, ip("8.7.8.8")));
        assert!(allowed(&rules, ip("10.200.1.1")));
        assert!(!allowed(&rules, ip("11.0.0.1")));
        assert!(allowed(&rules, ip("2001:db8::1")));
        assert!(!allowed(&rules, ip("2001:db9::1")));
        assert!(allowed(&rules, None));
    }

    #[test]
    fn no_match_allows_and_block_blocks() {
        let rules = vec![rule("192.168.1.7", IpAction::Block)];
        assert!(!allowed(&rules, ip("192.168.1.7")));
        assert!(allowed(&rules, ip("192.168.1.8")));
        assert!(allowed(&[], ip("192.168.1.7")));
        // Not a block: fails closed either way.
        let rules = vec![rule("10.0.0.0/99", IpAction::Block)];
        assert!(!allowed(&rules, ip("192.168.0.1")));
        let rules = vec![
            rule("10.0.0.0/99", IpAction::Allow),
            rule("*", IpAction::Block),
        ];
        assert!(!allowed(&rules, ip("10.0.0.1")));
    }
}
