//! FHIR type names as FHIRPath needs them without a full type model: which suffixes of a JSON
//! key name a choice element (`valueQuantity`), and which types count as subtypes of which.

/// Maps a choice-element suffix (the part after the element name, e.g. `Quantity` in
/// `valueQuantity`, `DateTime` in `effectiveDateTime`) to the canonical FHIR type name.
/// Returns `None` when the suffix is not a FHIR data type, so that keys such as `valueSet`
/// are not mistaken for `value[x]`.
pub(crate) fn choice_suffix_type(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "Base64Binary" => "base64Binary",
        "Boolean" => "boolean",
        "Canonical" => "canonical",
        "Code" => "code",
        "Date" => "date",
        "DateTime" => "dateTime",
        "Decimal" => "decimal",
        "Id" => "id",
        "Instant" => "instant",
        "Integer" => "integer",
        "Integer64" => "integer64",
        "Markdown" => "markdown",
        "Oid" => "oid",
        "PositiveInt" => "positiveInt",
        "String" => "string",
        "Time" => "time",
        "UnsignedInt" => "unsignedInt",
        "Uri" => "uri",
        "Url" => "url",
        "Uuid" => "uuid",
        "Address" => "Address",
        "Age" => "Age",
        "Annotation" => "Annotation",
        "Attachment" => "Attachment",
        "CodeableConcept" => "CodeableConcept",
        "CodeableReference" => "CodeableReference",
        "Coding" => "Coding",
        "ContactDetail" => "ContactDetail",
        "ContactPoint" => "ContactPoint",
        "Contributor" => "Contributor",
        "Count" => "Count",
        "DataRequirement" => "DataRequirement",
        "Distance" => "Distance",
        "Dosage" => "Dosage",
        "Duration" => "Duration",
        "Expression" => "Expression",
        "HumanName" => "HumanName",
        "Identifier" => "Identifier",
        "Meta" => "Meta",
        "Money" => "Money",
        "ParameterDefinition" => "ParameterDefinition",
        "Period" => "Period",
        "Quantity" => "Quantity",
        "Range" => "Range",
        "Ratio" => "Ratio",
        "Reference" => "Reference",
        "RelatedArtifact" => "RelatedArtifact",
        "SampledData" => "SampledData",
        "Signature" => "Signature",
        "Timing" => "Timing",
        "TriggerDefinition" => "TriggerDefinition",
        "UsageContext" => "UsageContext",
        _ => return None,
    })
}

/// Canonical spelling of a type name written in an expression: FHIRPath allows `FHIR.` and
/// `System.` qualifiers, and the search parameter data writes `ofType(DateTime)` as well as
/// `ofType(dateTime)`.
pub(crate) fn canonical_type_name(name: &str) -> String {
    let name = name.strip_prefix("FHIR.").unwrap_or(name);
    if let Some(system) = name.strip_prefix("System.") {
        return match system {
            "Boolean" => "boolean",
            "String" => "string",
            "Integer" => "integer",
            "Decimal" => "decimal",
            "Date" => "date",
            "DateTime" => "dateTime",
            "Time" => "time",
            "Quantity" => "Quantity",
            other => other,
        }
        .to_string();
    }
    match choice_suffix_type(name) {
        Some(canonical) => canonical.to_string(),
        None => name.to_string(),
    }
}

/// Whether a value of type `actual` is also a `wanted` (FHIR's profile-based specialisations of
/// primitives and of Quantity, plus the abstract resource bases).
pub(crate) fn is_subtype(actual: &str, wanted: &str, actual_is_resource: bool) -> bool {
    if actual == wanted {
        return true;
    }
    if actual_is_resource {
        return match wanted {
            "Resource" => true,
            "DomainResource" => !matches!(actual, "Bundle" | "Binary" | "Parameters"),
            _ => false,
        };
    }
    match wanted {
        "string" => matches!(actual, "code" | "id" | "markdown"),
        "uri" => matches!(actual, "url" | "canonical" | "oid" | "uuid"),
        "integer" => matches!(actual, "positiveInt" | "unsignedInt"),
        "decimal" => matches!(actual, "integer" | "positiveInt" | "unsignedInt"),
        "Quantity" => matches!(
            actual,
            "Age" | "Count" | "Distance" | "Duration" | "SimpleQuantity" | "MoneyQuantity"
        ),
        _ => false,
    }
}

/// Whether a JSON string with no declared type may be a `wanted`: every FHIR primitive except
/// boolean and the numbers is carried as a JSON string.
pub(crate) fn is_string_primitive(wanted: &str) -> bool {
    matches!(
        wanted,
        "string"
            | "code"
            | "id"
            | "markdown"
            | "uri"
            | "url"
            | "canonical"
            | "oid"
            | "uuid"
            | "base64Binary"
            | "date"
            | "dateTime"
            | "instant"
            | "time"
            | "integer64"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(choice_suffix_type("DateTime"), Some("dateTime"));
        assert_eq!(choice_suffix_type("Quantity"), Some("Quantity"));
        assert_eq!(choice_suffix_type("Set"), None);
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_type_name("DateTime"), "dateTime");
        assert_eq!(canonical_type_name("FHIR.Patient"), "Patient");
        assert_eq!(canonical_type_name("System.String"), "string");
    }

    #[test]
    fn subtypes() {
        assert!(is_subtype("Age", "Quantity", false));
        assert!(!is_subtype("Quantity", "Age", false));
        assert!(is_subtype("Patient", "DomainResource", true));
        assert!(!is_subtype("Bundle", "DomainResource", true));
    }
}
