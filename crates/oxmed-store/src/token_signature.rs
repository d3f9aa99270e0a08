//! A resource's token signature: a 64-bit Bloom filter of the `(parameter, code)` pairs of its
//! token index rows, kept on each of its reference index rows (`reference_idx.token_signature`).
//!
//! The commonest clinical search is a patient's resources with a code
//! (`Observation?subject=X&code=Y`, a SMART `patient/` scope with criteria, `/Patient/X/...`):
//! the reference rows of the patient drive it, and each needs a probe of the token rows to learn
//! whether the resource has the code. A patient with a hundred Observations costs a hundred
//! probes to find the five with the code; on PostgreSQL each probe is ~3-4 us, most of such a
//! search's time in the database. With the signature on the driving rows, the rows whose
//! resource cannot have the code are dropped while the reference index is read (an index-only
//! filter), and only the others (the matches and ~3% false positives) are probed.
//!
//! The filter only ever removes rows that the probe would reject: it is a superset test, never
//! the answer. `NULL` (rows written before the column existed) passes. The hash must never
//! change: stored signatures are compared with masks computed by later builds.

use crate::index_rows::{Col, TableRows};
use crate::schema;

/// FNV-1a, 64-bit: fixed by its definition, so stored signatures stay valid across builds and
/// toolchains (`std`'s hashers make no such promise).
fn hash(code: &str, value: &str) -> u64 {
    let mut h = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut h, code.as_bytes());
    // Not a byte of any UTF-8 text: `("ab", "c")` and `("a", "bc")` hash apart.
    std::hash::Hasher::write(&mut h, &[0xff]);
    std::hash::Hasher::write(&mut h, value.as_bytes());
    std::hash::Hasher::finish(&h)
}

/// The two bits of a `(parameter code, token code)` pair. Two bits per pair: an Observation
/// has ~6 token rows (~11 bits set), so a pair it lacks passes with probability ~(11/64)^2, 3%.
pub(crate) fn mask(code: &str, value: &str) -> i64 {
    let h = hash(code, value);
    let bits = (1u64 << (h & 63)) | (1u64 << ((h >> 32) & 63));
    bits as i64
}

/// The signature of a version's index rows: every token row's pair (rows without a code, as
/// `system|` leaves them, are never searched by code and add nothing).
pub(crate) fn of_rows(tables: &[TableRows]) -> i64 {
    let mut sig = 0i64;
    for t in tables.iter().filter(|t| t.table == schema::TOKEN) {
        for (code, cols) in &t.rows {
            if let Some(Col::Text(value)) = cols.first()
                && !value.is_empty()
            {
                sig |= mask(code, value);
            }
        }
    }
    sig
}

/// `row.token_signature` may hold every bit of `mask` (the placeholder `p` is bound to it).
pub(crate) fn filter(row: &str, p: &str) -> String {
    format!("({row}.token_signature IS NULL OR ({row}.token_signature & {p}) = {p})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signature(r: serde_json::Value) -> i64 {
        of_rows(&crate::index_rows::rows(&oxmed_fhir::index::extract(&r)))
    }

    #[test]
    fn a_mask_is_two_fixed_bits() {
        let m = mask("code", "8480-6");
        assert!((1..=2).contains(&m.count_ones()), "{m:#x}");
        // Stored signatures outlive the build: the function is pinned.
        assert_eq!(m, mask("code", "8480-6"));
        // FNV-1a by hand: of the one byte 0xff, and of `code`, 0xff, `8480-6` (bits 2 and 38).
        assert_eq!(hash("", ""), 0xaf64724c8602eb6e);
        assert_eq!(m, (1 << 2) | (1 << 38));
        assert_ne!(mask("code", "ab"), 0);
        assert_ne!(hash("ab", "c"), hash("a", "bc"));
    }

    #[test]
    fn a_signature_holds_every_code_of_the_resource() {
        let o = json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"},
                                {"system": "http://snomed.info/sct", "code": "271649006"}]},
            "category": [{"coding": [{"code": "vital-signs"}]}],
            "subject": {"reference": "Patient/p1"}});
        let sig = signature(o);
        for (code, value) in [
            ("code", "8480-6"),
            ("code", "271649006"),
            ("status", "final"),
            ("category", "vital-signs"),
        ] {
            let m = mask(code, value);
            assert_eq!(sig & m, m, "{code}={value}");
        }
        // Bits are set only by the resource's pairs; a pair it lacks is usually outside them.
        let absent = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
            .iter()
            .filter(|v| sig & mask("code", v) == mask("code", v))
            .count();
        assert!(absent <= 3, "{absent} of 10 absent codes pass");
    }

    #[test]
    fn no_tokens_no_bits() {
        let p = json!({"resourceType": "Observation", "id": "o2",
            "subject": {"reference": "Patient/p1"}});
        let sig = signature(p);
        // `_id`-like rows are not indexed; an Observation without tokens has none.
        assert_eq!(sig, 0);
    }
}
