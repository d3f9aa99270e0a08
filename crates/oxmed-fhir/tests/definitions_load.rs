//! Start-up cost of the definitions. Alone in its file so that it runs in a fresh process and
//! measures the first, parsing call of `Definitions::global()`. Run it in release:
//!     cargo test --release -p oxmed-fhir --test definitions_load -- --ignored --nocapture

use std::time::Instant;

use oxmed_fhir::definitions::{Definitions, TypeKind};

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn global_definitions_load_quickly() {
    let start = Instant::now();
    let defs = Definitions::global();
    let elapsed = start.elapsed();
    let resources = defs.resource_types().count();
    eprintln!("Definitions::global() first call: {elapsed:?} ({resources} resource types)");
    assert!(
        defs.type_def("Patient")
            .is_some_and(|t| t.kind() == TypeKind::Resource)
    );
    if !cfg!(debug_assertions) {
        // The server must be healthy within 300 ms of start; definitions get a small share.
        assert!(elapsed.as_millis() < 150, "loading took {elapsed:?}");
    }
}
