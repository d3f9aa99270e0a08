//! Non-extended mode (spec §1.3): unless a request says `X-Medplum: extended`, the resources it
//! gets back carry no `meta.project`, `meta.author`, `meta.onBehalfOf`, `meta.account`,
//! `meta.accounts` or `meta.compartment`. Every response of every caller goes through this, so the stored JSON is
//! edited in place — the members removed from the `meta` object, found by a scan that follows
//! JSON strings and nesting — rather than parsed and written again.

/// The members of `meta` that only extended mode shows.
const EXTENDED_META: [&str; 6] = [
    "project",
    "author",
    "onBehalfOf",
    "account",
    "accounts",
    "compartment",
];

/// The byte just after the JSON value starting at `at` (a string, object, array or scalar),
/// or `None` if the text ends first.
fn value_end(s: &[u8], at: usize) -> Option<usize> {
    match s.get(at)? {
        b'"' => string_end(s, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            while i < s.len() {
                match s[i] {
                    b'"' => {
                        i = string_end(s, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = at;
            while i < s.len() && !matches!(s[i], b',' | b'}' | b']') {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The byte just after the string whose opening quote is at `at`.
fn string_end(s: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `content` (a resource as the store keeps it: compact JSON, `meta` a top-level member)
/// without the extended-mode members of `meta`; `None` when it has none of them, or when the
/// text is not what the store writes (then the caller parses it instead).
pub fn strip(content: &str) -> Option<String> {
    let s = content.as_bytes();
    // The top-level members, up to `meta`.
    let mut i = 1;
    if s.first() != Some(&b'{') {
        return None;
    }
    let meta_start = loop {
        if s.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(s, i)?;
        let key = &content[i + 1..key_end - 1];
        if s.get(key_end) != Some(&b':') {
            return None;
        }
        let value_at = key_end + 1;
        if key == "meta" {
            break value_at;
        }
        let end = value_end(s, value_at)?;
        match s.get(end) {
            Some(b',') => i = end + 1,
            _ => return None,
        }
    };
    if s.get(meta_start) != Some(&b'{') {
        return None;
    }
    let meta_end = value_end(s, meta_start)?;
    // The members of `meta` to keep, as byte ranges.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut removed = false;
    let mut j = meta_start + 1;
    while j < meta_end - 1 {
        if s[j] != b'"' {
            return None;
        }
        let key_end = string_end(s, j)?;
        let key = &content[j + 1..key_end - 1];
        let end = value_end(s, key_end + 1)?;
        if EXTENDED_META.contains(&key) {
            removed = true;
        } else {
            kept.push((j, end));
        }
        j = match s.get(end) {
            Some(b',') => end + 1,
            Some(b'}') if end == meta_end - 1 => end,
            _ => return None,
        };
    }
    if !removed {
        return None;
    }
    let mut out = String::with_capacity(content.len());
    out.push_str(&content[..meta_start]);
    out.push('{');
    for (n, (a, b)) in kept.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&content[*a..*b]);
    }
    out.push('}');
    out.push_str(&content[meta_end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn removes_only_the_extended_members_of_meta() {
        let r = json!({"resourceType": "Patient", "id": "1",
            "meta": {"tag": [{"code": "a\"project\":\"x"}], "versionId": "v", "lastUpdated": "t",
                "project": "p", "author": {"reference": "Practitioner/1"},
                "onBehalfOf": {"reference": "Patient/2"}},
            "name": [{"family": "O'Brien \\u00e9"}], "project": "kept"});
        let text = serde_json::to_string(&r).unwrap();
        let out: Value = serde_json::from_str(&strip(&text).unwrap()).unwrap();
        let mut want = r.clone();
        let meta = want["meta"].as_object_mut().unwrap();
        meta.remove("project");
        meta.remove("author");
        meta.remove("onBehalfOf");
        assert_eq!(out, want);
        // Only extended members in meta: an empty meta object remains.
        let r = json!({"resourceType": "Patient", "id": "1", "meta": {"project": "p"}});
        let out: Value = serde_json::from_str(&strip(&r.to_string()).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"resourceType": "Patient", "id": "1", "meta": {}})
        );
        // Nothing to remove, or not the store's layout: None.
        assert_eq!(
            strip(
                &json!({"resourceType": "Patient", "id": "1", "meta": {"versionId": "v"}})
                    .to_string()
            ),
            None
        );
        assert_eq!(
            strip(&json!({"resourceType": "Patient", "id": "1"}).to_string()),
            None
        );
        assert_eq!(strip("{\"a\": 1}"), None);
        assert_eq!(strip("not json"), None);
        assert_eq!(strip("{\"meta\":{\"project\":\"p\""), None);
    }
}
