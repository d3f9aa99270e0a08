//! A resource read only as far as a decision needs: its top-level elements that a policy's
//! criteria look at, the others skipped without being built. Deciding `_compartment` or
//! `subject` criteria on a read by id then costs a scan of the stored JSON, not a parse of it.
//! A field `head.name` asks for one member of the object `head` only (`meta.account`: the
//! server's `meta` carries its version, dates, project and author, which a compartment check
//! does not look at).

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Whether the element named `key` is `field`, or a typed form of a choice element
/// (`valueQuantity` for `value`), or the primitive extensions of it (`_status`).
fn names(field: &str, key: &str) -> bool {
    key == field
        || key
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        || key.strip_prefix('_').is_some_and(|k| k == field)
}

/// Whether a top-level element named `key` is one of `fields` (see [`names`]), whole.
pub fn wanted(fields: &[String], key: &str) -> bool {
    fields.iter().any(|f| !f.contains('.') && names(f, key))
}

/// What `fields` ask of the element `key` of the object they are read in (`within`: the
/// top-level element it is a member of, if any).
enum Want {
    Nothing,
    Whole,
    /// Some members of it, which are `head.member` fields.
    Part,
}

fn want(fields: &[String], within: Option<&str>, key: &str) -> Want {
    let mut part = false;
    for f in fields {
        match (within, f.split_once('.')) {
            (None, None) if names(f, key) => return Want::Whole,
            (None, Some((head, _))) if head == key => part = true,
            (Some(w), Some((head, member))) if head == w && names(member, key) => {
                return Want::Whole;
            }
            _ => {}
        }
    }
    if part { Want::Part } else { Want::Nothing }
}

/// The JSON object `content` with only the elements in `fields` (see [`wanted`]; `head.member`
/// fields keep only those members of `head`).
pub fn parse(content: &str, fields: &[String]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(content);
    let value = Partial {
        fields,
        within: None,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Partial<'f> {
    fields: &'f [String],
    within: Option<&'f str>,
}

impl<'de> DeserializeSeed<'de> for Partial<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Partial<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            match want(self.fields, self.within, &key) {
                Want::Whole => {
                    out.insert(key.into_owned(), map.next_value::<Value>()?);
                }
                Want::Part if self.within.is_none() => {
                    let part = map.next_value_seed(Partial {
                        fields: self.fields,
                        within: Some(&key),
                    })?;
                    out.insert(key.into_owned(), part);
                }
                Want::Part | Want::Nothing => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_what_is_asked() {
        let full = json!({"resourceType": "Observation", "id": "1", "status": "final",
            "subject": {"reference": "Patient/1"}, "valueQuantity": {"value": 3},
            "_status": {"extension": []}, "code": {"text": "a\"b"}});
        let fields = vec![
            "resourceType".to_owned(),
            "subject".to_owned(),
            "value".to_owned(),
            "status".to_owned(),
        ];
        let v = parse(&full.to_string(), &fields).unwrap();
        assert_eq!(
            v,
            json!({"resourceType": "Observation", "status": "final",
                "subject": {"reference": "Patient/1"}, "valueQuantity": {"value": 3},
                "_status": {"extension": []}})
        );
        assert!(parse("[1]", &fields).is_err());
        // One member of `meta` only, choice forms and extensions included; `meta` whole when
        // asked for whole.
        let stored = json!({"resourceType": "Observation", "id": "1",
            "meta": {"versionId": "2", "account": {"reference": "Organization/1"},
                "accounts": [{"reference": "Organization/2"}], "_source": {"id": "x"}},
            "subject": {"reference": "Patient/1"}});
        let fields = vec![
            "resourceType".to_owned(),
            "meta.account".to_owned(),
            "meta.source".to_owned(),
            "subject".to_owned(),
        ];
        assert_eq!(
            parse(&stored.to_string(), &fields).unwrap(),
            json!({"resourceType": "Observation",
                "meta": {"account": {"reference": "Organization/1"}, "_source": {"id": "x"}},
                "subject": {"reference": "Patient/1"}})
        );
        let mut whole = fields.clone();
        whole.push("meta".to_owned());
        assert_eq!(
            parse(&stored.to_string(), &whole).unwrap()["meta"],
            stored["meta"]
        );
        assert!(!wanted(&fields, "meta"));
        assert!(parse("{\"a\": 1} x", &fields).is_err());
        assert!(!wanted(&fields, "valueset"));
    }
}
