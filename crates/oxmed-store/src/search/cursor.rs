//! The continuation token of keyset paging: the sort key values and `rid` of the last row of a
//! page, and the sort it belongs to. Opaque to clients: base64url of a small JSON array.
//!
//! A page continues strictly after that row in the sort order, so rows created, updated or
//! deleted meanwhile never shift it: no row that exists throughout is skipped or repeated.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::StoreError;

/// One sort key value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyValue {
    /// The row has no value for the key (it sorts last).
    Null,
    Text(String),
    Int(i64),
    Real(f64),
}

/// The type a sort key's values have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Text,
    Int,
    Real,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub values: Vec<KeyValue>,
    pub rid: i64,
}

/// Longest token accepted: a sort of a few keys fits in far less.
const MAX_LEN: usize = 8192;

pub(crate) fn encode(signature: &str, cursor: &Cursor) -> String {
    let values: Vec<Value> = cursor
        .values
        .iter()
        .map(|v| match v {
            KeyValue::Null => Value::Null,
            KeyValue::Text(s) => json!({ "t": s }),
            KeyValue::Int(i) => json!({ "i": i }),
            KeyValue::Real(f) => json!({ "f": f }),
        })
        .collect();
    let doc = json!([signature, cursor.rid, values]);
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// Reads a token made by [`encode`] for the same sort (`signature`, with the key types
/// `kinds`); anything else is `InvalidCursor`.
pub(crate) fn decode(
    token: &str,
    signature: &str,
    kinds: &[KeyKind],
) -> Result<Cursor, StoreError> {
    let invalid = |why: &str| StoreError::InvalidCursor(why.to_owned());
    if token.len() > MAX_LEN {
        return Err(invalid("the cursor is too long"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid("the cursor is not base64url"))?;
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("the cursor is malformed"))?;
    let [sig, rid, values] = doc.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err(invalid("the cursor is malformed"));
    };
    if sig.as_str() != Some(signature) {
        return Err(invalid("the cursor belongs to a search with another sort"));
    }
    let rid = rid
        .as_i64()
        .ok_or_else(|| invalid("the cursor is malformed"))?;
    let values = values
        .as_array()
        .filter(|v| v.len() == kinds.len())
        .ok_or_else(|| invalid("the cursor does not fit the sort"))?;
    let values = values
        .iter()
        .zip(kinds)
        .map(|(v, kind)| match (v, kind) {
            (Value::Null, _) => Some(KeyValue::Null),
            (Value::Object(o), KeyKind::Text) => o
                .get("t")
                .and_then(Value::as_str)
                .map(|s| KeyValue::Text(s.to_owned())),
            (Value::Object(o), KeyKind::Int) => {
                o.get("i").and_then(Value::as_i64).map(KeyValue::Int)
            }
            (Value::Object(o), KeyKind::Real) => {
                o.get("f").and_then(Value::as_f64).map(KeyValue::Real)
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("the cursor does not fit the sort"))?;
    Ok(Cursor { values, rid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let c = Cursor {
            values: vec![
                KeyValue::Text("smith".into()),
                KeyValue::Null,
                KeyValue::Real(1.5),
                KeyValue::Int(-3),
            ],
            rid: 42,
        };
        let kinds = [KeyKind::Text, KeyKind::Int, KeyKind::Real, KeyKind::Int];
        let token = encode("name,-date", &c);
        assert_eq!(decode(&token, "name,-date", &kinds).unwrap(), c);
        for bad in ["", "!!!", "e30", &URL_SAFE_NO_PAD.encode("[1,2]")] {
            assert!(matches!(
                decode(bad, "name,-date", &kinds),
                Err(StoreError::InvalidCursor(_))
            ));
        }
        assert!(decode(&token, "name", &kinds).is_err());
        assert!(decode(&token, "name,-date", &kinds[..3]).is_err());
        let wrong = [KeyKind::Int, KeyKind::Int, KeyKind::Real, KeyKind::Int];
        assert!(decode(&token, "name,-date", &wrong).is_err());
    }
}
