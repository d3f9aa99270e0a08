//! FHIR R4 and Medplum definitions, the FHIRPath subset that search parameters use, extraction of
//! search index values, resource validation and `OperationOutcome`. Knows nothing of HTTP or SQL.

pub mod definitions;
pub mod fhirpath;
pub mod index;
pub mod index_value;
pub mod operation_outcome;
pub mod search;
pub mod search_parameter;
pub mod validation;
