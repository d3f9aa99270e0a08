//! Query strings and criteria as `SearchRequest`s.
