//! In-memory matching of one resource against search conditions.
