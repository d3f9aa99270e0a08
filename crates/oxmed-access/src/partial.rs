//! A resource read only as far as a decision needs: its top-level elements that a policy's
//! criteria look at, the others skipped without being built. Deciding `_compartment` or
//! `subject` criteria on a read by id then costs a scan of the stored JSON, not a parse of it.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Whether a top-level element named `key` is one of `fields`, or a typed form of a choice
/// element among them (`valueQuantity` for `value`).
pub fn wanted(fields: &[String], key: &str) -> bool {
    fields.iter().any(|f| {
        key == f
            || key
                .strip_prefix(f.as_str())
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            || key.strip_prefix('_').is_some_and(|k| k == f)
    })
}

/// The JSON object `content` with only the top-level elements in `fields` (see [`wanted`]).
pub fn parse(content: &str, fields: &[String]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(content);
    let value = Partial(fields).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Partial<'f>(&'f [String]);

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
            if wanted(self.0, &key) {
                out.insert(key.into_owned(), map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
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
        assert!(parse("{\"a\": 1} x", &fields).is_err());
        assert!(!wanted(&fields, "valueset"));
    }
}
