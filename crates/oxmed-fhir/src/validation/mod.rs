//! Structural validation of a FHIR JSON resource against the base definitions: known
//! `resourceType`, known properties (choice variants and `_x` primitive companions included),
//! arrays versus single values, cardinality, primitive JSON kinds and formats, required-binding
//! codes, and the JSON rules of <https://hl7.org/fhir/R4/json.html> (no `null`, no empty objects,
//! arrays or strings). Inline resources (`contained`, `Bundle.entry.resource`,
//! `Parameters.parameter.resource`, ...) are validated as resources in their own right.
//!
//! Profiles, invariants other than `ext-1` and `dom-2`, reference targets and terminology beyond
//! required bindings are not checked.
//!
//! This runs on every create and update, so the happy path does not allocate: paths are a linked
//! list of stack frames rendered into strings only when an issue is reported.

mod medplum_rules;
mod primitive;

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};

use crate::definitions::{
    Definitions, ElementDef, GroupId, MAX_GROUP_CHILDREN, PrimitiveKind, Shape, Target, TypeId,
    ValueSetDef,
};

/// Validation stops collecting after this many issues; a client sending garbage learns enough
/// from the first hundred, and the server does not build a huge outcome.
pub const MAX_ISSUES: usize = 100;

/// Deeper structures are refused rather than risking the stack. `serde_json` already refuses to
/// parse JSON nested more than 128 levels, so this only guards values built in code.
const MAX_DEPTH: u16 = 512;

/// The kind of a validation problem. [`IssueCode::as_str`] gives the matching FHIR
/// `OperationOutcome.issue.code` (value set `issue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueCode {
    /// The JSON does not have the shape the definitions describe: unknown property, wrong JSON
    /// kind, array where a single value belongs or the reverse, two choice variants.
    Structure,
    /// A required element is missing or has fewer repetitions than its minimum.
    Required,
    /// A primitive value has the right JSON kind but not the right form (`2020-13-01`).
    Value,
    /// A code is not in the value set of a required binding.
    CodeInvalid,
    /// A FHIR invariant (constraint) is violated: `ext-1`, `dom-2`.
    Invariant,
    /// `null`, empty objects and empty arrays, which FHIR JSON forbids.
    Invalid,
    /// Validation stopped after [`MAX_ISSUES`] issues.
    TooCostly,
}

impl IssueCode {
    /// The `issue-type` code for `OperationOutcome.issue.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::CodeInvalid => "code-invalid",
            Self::Invariant => "invariant",
            Self::Invalid => "invalid",
            Self::TooCostly => "too-costly",
        }
    }
}

impl fmt::Display for IssueCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message} ({code})")]
pub struct ValidationIssue {
    /// FHIRPath-style location using the JSON property names, e.g. `Patient.name[0].given[1]`,
    /// `Observation.valueQuantity.value`, `Patient.contained[0].gender`. The extensions of a
    /// primitive (`_birthDate` in JSON) are reported under the primitive's name, as FHIRPath
    /// sees them: `Patient.birthDate.extension[0].url`.
    pub path: String,
    pub message: String,
    pub code: IssueCode,
}

/// Validates a resource against the definitions compiled into this binary. Returns every issue
/// found, up to [`MAX_ISSUES`].
pub fn validate(resource: &Value) -> Result<(), Vec<ValidationIssue>> {
    validate_with(Definitions::global(), resource)
}

/// [`validate`] against explicitly given definitions.
pub fn validate_with(defs: &Definitions, resource: &Value) -> Result<(), Vec<ValidationIssue>> {
    let mut v = Validator {
        defs,
        issues: Vec::new(),
        stopped: false,
    };
    v.root(resource);
    if v.issues.is_empty() {
        medplum_rules::check(resource, &mut v.issues);
    }
    if v.issues.is_empty() {
        Ok(())
    } else {
        Err(v.issues)
    }
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Root(&'a str),
    Field(&'a str),
    Index(usize),
}

/// A location in the resource as a chain of stack frames, so that descending costs nothing.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
    depth: u16,
}

impl<'a> Path<'a> {
    fn root(name: &'a str) -> Self {
        Path {
            parent: None,
            segment: Segment::Root(name),
            depth: 0,
        }
    }

    fn field<'b>(&'b self, name: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            segment: Segment::Field(name),
            depth: self.depth.saturating_add(1),
        }
    }

    fn index(&self, i: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            segment: Segment::Index(i),
            depth: self.depth.saturating_add(1),
        }
    }

    fn render(&self) -> String {
        let mut segments = Vec::with_capacity(usize::from(self.depth) + 1);
        let mut current = Some(self);
        while let Some(p) = current {
            segments.push(p.segment);
            current = p.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root(name) => out.push_str(name),
                Segment::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

/// Which children of a group a JSON object has, by local index.
#[derive(Default)]
struct Seen([u64; MAX_GROUP_CHILDREN / 64]);

impl Seen {
    fn test(&self, i: u16) -> bool {
        self.0[usize::from(i) / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u16) {
        self.0[usize::from(i) / 64] |= 1 << (i % 64);
    }
}

struct Validator<'d> {
    defs: &'d Definitions,
    issues: Vec<ValidationIssue>,
    stopped: bool,
}

impl<'d> Validator<'d> {
    fn report(&mut self, path: &Path<'_>, code: IssueCode, message: impl Into<String>) {
        if self.stopped {
            return;
        }
        if self.issues.len() >= MAX_ISSUES {
            self.stopped = true;
            self.issues.push(ValidationIssue {
                path: path.render(),
                message: format!("stopped after {MAX_ISSUES} issues"),
                code: IssueCode::TooCostly,
            });
            return;
        }
        self.issues.push(ValidationIssue {
            path: path.render(),
            message: message.into(),
            code,
        });
    }

    fn root(&mut self, value: &Value) {
        let Value::Object(obj) = value else {
            let message = format!(
                "a resource must be a JSON object, found {}",
                primitive::json_kind(value)
            );
            self.report(&Path::root("Resource"), IssueCode::Structure, message);
            return;
        };
        let Some(ty) = self.resource_type(obj, None, None) else {
            return;
        };
        let name = self.defs.type_by_id(ty).name();
        self.resource_body(obj, ty, &Path::root(name), false);
    }

    /// A resource nested in another: `contained`, `Bundle.entry.resource`, ...
    fn inline_resource(
        &mut self,
        value: &Value,
        path: &Path<'_>,
        expected: Option<TypeId>,
        contained: bool,
    ) {
        let Value::Object(obj) = value else {
            let message = format!(
                "expected a resource (a JSON object), found {}",
                primitive::json_kind(value)
            );
            self.report(path, IssueCode::Structure, message);
            return;
        };
        if obj.is_empty() {
            self.report(path, IssueCode::Invalid, "must not be an empty object");
            return;
        }
        if let Some(ty) = self.resource_type(obj, Some(path), expected) {
            self.resource_body(obj, ty, path, contained);
        }
    }

    /// Checks `resourceType` and returns the type it names.
    fn resource_type(
        &mut self,
        obj: &Map<String, Value>,
        parent: Option<&Path<'_>>,
        expected: Option<TypeId>,
    ) -> Option<TypeId> {
        let at = match parent {
            Some(p) => p.field("resourceType"),
            None => Path::root("resourceType"),
        };
        let name = match obj.get("resourceType") {
            None => {
                self.report(&at, IssueCode::Required, "missing resourceType");
                return None;
            }
            Some(Value::String(s)) => s,
            Some(other) => {
                let message = format!(
                    "resourceType must be a string, found {}",
                    primitive::json_kind(other)
                );
                self.report(&at, IssueCode::Structure, message);
                return None;
            }
        };
        let Some(ty) = self
            .defs
            .type_id(name)
            .filter(|_| self.defs.is_resource_type(name))
        else {
            self.report(
                &at,
                IssueCode::Value,
                format!("unknown resource type {}", primitive::quote(name)),
            );
            return None;
        };
        if let Some(expected) = expected.filter(|&e| e != ty) {
            let message = format!(
                "expected a {} resource, found {name}",
                self.defs.type_by_id(expected).name()
            );
            self.report(&at, IssueCode::Value, message);
            return None;
        }
        Some(ty)
    }

    fn resource_body(
        &mut self,
        obj: &Map<String, Value>,
        ty: TypeId,
        path: &Path<'_>,
        contained: bool,
    ) {
        self.object(obj, self.defs.type_by_id(ty).root, path, true);
        if contained && obj.contains_key("contained") {
            let message = "dom-2: a contained resource must not contain resources";
            self.report(&path.field("contained"), IssueCode::Invariant, message);
        }
    }

    fn object(
        &mut self,
        obj: &Map<String, Value>,
        group: GroupId,
        path: &Path<'_>,
        resource_root: bool,
    ) {
        if obj.is_empty() {
            self.report(path, IssueCode::Invalid, "must not be an empty object");
            return;
        }
        if path.depth > MAX_DEPTH {
            self.report(path, IssueCode::Structure, "nested too deeply");
            return;
        }
        let defs = self.defs;
        let g = &defs.groups[group as usize];
        let mut seen = Seen::default();
        let mut seen_companion = Seen::default();
        let mut choice_with_companion = false;
        for (key, value) in obj {
            if self.stopped {
                return;
            }
            if resource_root && key == "resourceType" {
                continue;
            }
            let Some(prop) = g.props.get(key.as_str()) else {
                let message = format!("unknown element {}", primitive::quote(key));
                self.report(&path.field(key), IssueCode::Structure, message);
                continue;
            };
            let el = defs.element_by_id(prop.element);
            let set = if prop.companion {
                &mut seen_companion
            } else {
                &mut seen
            };
            if set.test(prop.local) {
                // Keys are unique in a JSON object, so a second key for one element can only be
                // another variant of a choice.
                let message = format!("only one variant of {} may be present", el.name());
                self.report(&path.field(key), IssueCode::Structure, message);
                continue;
            }
            set.set(prop.local);
            if prop.companion {
                if el.is_choice() && seen.test(prop.local) {
                    choice_with_companion = true;
                }
                self.companion(obj, key, value, el, prop.target, path);
            } else {
                if el.is_choice() && seen_companion.test(prop.local) {
                    choice_with_companion = true;
                }
                self.property(obj, key, value, el, prop.target, path);
            }
        }
        if choice_with_companion {
            self.check_choice_companions(obj, group, path);
        }
        for &local in &g.required {
            if !seen.test(local) && !seen_companion.test(local) {
                let el = defs.element_by_id(g.children[usize::from(local)]);
                let message = format!("missing required element {}", el.name());
                self.report(&path.field(el.name()), IssueCode::Required, message);
            }
        }
    }

    /// `valueString` with `_valueBoolean` names two variants of one choice.
    fn check_choice_companions(
        &mut self,
        obj: &Map<String, Value>,
        group: GroupId,
        path: &Path<'_>,
    ) {
        let g = &self.defs.groups[group as usize];
        for key in obj.keys() {
            let Some(name) = key.strip_prefix('_') else {
                continue;
            };
            let Some(prop) = g.props.get(key.as_str()) else {
                continue;
            };
            if !self.defs.element_by_id(prop.element).is_choice() || obj.contains_key(name) {
                continue;
            }
            let other_value = obj.keys().any(|k| {
                !k.starts_with('_')
                    && g.props
                        .get(k.as_str())
                        .is_some_and(|p| p.local == prop.local)
            });
            if other_value {
                let message = format!("{key} does not match the variant of the value it extends");
                self.report(&path.field(name), IssueCode::Structure, message);
            }
        }
    }

    fn property(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        value: &Value,
        el: &ElementDef,
        target: Target,
        path: &Path<'_>,
    ) {
        let node = path.field(key);
        match value {
            Value::Array(items) => {
                if !el.is_array() {
                    self.report(
                        &node,
                        IssueCode::Structure,
                        "must be a single value, not an array",
                    );
                    return;
                }
                if items.is_empty() {
                    self.report(&node, IssueCode::Invalid, "must not be an empty array");
                    return;
                }
                self.repetitions(el, items.len(), &node);
                for (i, item) in items.iter().enumerate() {
                    if self.stopped {
                        return;
                    }
                    let at = node.index(i);
                    if item.is_null() {
                        // FHIR pads a primitive array with null where only the `_x` entry at that
                        // index (id or extensions) is present.
                        if !(self.is_primitive(target) && companion_entry_present(obj, key, i)) {
                            self.report(&at, IssueCode::Invalid, "must not be null");
                        }
                        continue;
                    }
                    self.value(item, el, target, &at);
                }
            }
            Value::Null => self.report(&node, IssueCode::Invalid, "must not be null"),
            _ => {
                if el.is_array() {
                    self.report(&node, IssueCode::Structure, "must be an array");
                    return;
                }
                self.value(value, el, target, &node);
            }
        }
    }

    fn repetitions(&mut self, el: &ElementDef, count: usize, node: &Path<'_>) {
        if let Some(max) = el.max()
            && count > max as usize
        {
            let message = format!("at most {max} repetitions allowed, found {count}");
            self.report(node, IssueCode::Structure, message);
        }
        if count < el.min() as usize {
            let message = format!("at least {} repetitions required, found {count}", el.min());
            self.report(node, IssueCode::Required, message);
        }
    }

    /// `_x`: the id and extensions of primitive `x`, an object, or an array aligned with `x`.
    fn companion(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        value: &Value,
        el: &ElementDef,
        target: Target,
        path: &Path<'_>,
    ) {
        let name = &key[1..];
        let node = path.field(name);
        let Target::Type(ty) = target else {
            return;
        };
        let group = self.defs.type_by_id(ty).root;
        match value {
            Value::Object(o) => {
                if el.is_array() {
                    self.report(
                        &node,
                        IssueCode::Structure,
                        format!("{key} must be an array"),
                    );
                    return;
                }
                self.object(o, group, &node, false);
            }
            Value::Array(items) => {
                if !el.is_array() {
                    self.report(
                        &node,
                        IssueCode::Structure,
                        format!("{key} must be a single object, not an array"),
                    );
                    return;
                }
                if items.is_empty() {
                    self.report(
                        &node,
                        IssueCode::Invalid,
                        format!("{key} must not be an empty array"),
                    );
                    return;
                }
                let values = match obj.get(name) {
                    Some(Value::Array(values)) => Some(values),
                    _ => None,
                };
                if let Some(values) = values.filter(|v| v.len() != items.len()) {
                    let message = format!(
                        "{key} has {} entries but {name} has {}",
                        items.len(),
                        values.len()
                    );
                    self.report(&node, IssueCode::Structure, message);
                    return;
                }
                if values.is_none() {
                    self.repetitions(el, items.len(), &node);
                }
                for (i, item) in items.iter().enumerate() {
                    if self.stopped {
                        return;
                    }
                    let at = node.index(i);
                    match item {
                        Value::Object(o) => self.object(o, group, &at, false),
                        // Where both entries are null the value side reports it.
                        Value::Null if values.is_some() => {}
                        other => {
                            let message = format!(
                                "{key} entries must be objects, found {}",
                                primitive::json_kind(other)
                            );
                            let code = if other.is_null() {
                                IssueCode::Invalid
                            } else {
                                IssueCode::Structure
                            };
                            self.report(&at, code, message);
                        }
                    }
                }
            }
            Value::Null => {
                self.report(&node, IssueCode::Invalid, format!("{key} must not be null"))
            }
            other => {
                let message = format!(
                    "{key} must be an object, found {}",
                    primitive::json_kind(other)
                );
                self.report(&node, IssueCode::Structure, message);
            }
        }
    }

    fn is_primitive(&self, target: Target) -> bool {
        matches!(target, Target::Type(t) if matches!(self.defs.type_by_id(t).shape, Shape::Primitive(_)))
    }

    /// One value of an element (one array entry, or the single value).
    fn value(&mut self, v: &Value, el: &ElementDef, target: Target, at: &Path<'_>) {
        let ty = match target {
            Target::Group(group) => {
                match v {
                    Value::Object(o) => self.object(o, group, at, false),
                    other => self.expected_object(at, other),
                }
                return;
            }
            Target::Type(ty) => ty,
        };
        let defs = self.defs;
        match defs.type_by_id(ty).shape {
            Shape::Primitive(kind) => {
                if let Err(violation) = primitive::check(kind, v) {
                    self.report(at, violation.code, violation.message);
                    return;
                }
                if kind == PrimitiveKind::Code
                    && let (Some(vs), Value::String(code)) = (self.binding(el), v)
                    && vs.contains_code(code) == Some(false)
                {
                    self.report(at, IssueCode::CodeInvalid, not_in_value_set(vs, code));
                }
            }
            Shape::Complex(group) => {
                let Value::Object(o) = v else {
                    self.expected_object(at, v);
                    return;
                };
                self.object(o, group, at, false);
                if ty == defs.extension_type {
                    self.extension_invariant(o, at);
                } else if let Some(vs) = self.binding(el) {
                    if ty == defs.coding_type {
                        self.coding(o, vs, at);
                    } else if ty == defs.codeable_concept_type
                        && let Some(Value::Array(codings)) = o.get("coding")
                    {
                        let node = at.field("coding");
                        for (i, coding) in codings.iter().enumerate() {
                            if let Value::Object(c) = coding {
                                self.coding(c, vs, &node.index(i));
                            }
                        }
                    }
                }
            }
            Shape::Resource(expected) => {
                let contained = el.name() == "contained" && el.path().matches('.').count() == 1;
                self.inline_resource(v, at, expected, contained);
            }
        }
    }

    fn expected_object(&mut self, at: &Path<'_>, found: &Value) {
        let message = format!("expected an object, found {}", primitive::json_kind(found));
        let code = if found.is_null() {
            IssueCode::Invalid
        } else {
            IssueCode::Structure
        };
        self.report(at, code, message);
    }

    fn binding(&self, el: &ElementDef) -> Option<&'d ValueSetDef> {
        el.binding.map(|id| self.defs.value_set_by_id(id))
    }

    /// A required binding constrains only the codings from the code systems its value set draws
    /// on; codings from other systems are additional translations and are left alone.
    fn coding(&mut self, coding: &Map<String, Value>, vs: &ValueSetDef, at: &Path<'_>) {
        let (Some(Value::String(system)), Some(Value::String(code))) =
            (coding.get("system"), coding.get("code"))
        else {
            return;
        };
        if vs.contains(system, code) == Some(false) {
            self.report(
                &at.field("code"),
                IssueCode::CodeInvalid,
                not_in_value_set(vs, code),
            );
        }
    }

    /// ext-1: an extension has either nested extensions or a value, not both and not neither.
    fn extension_invariant(&mut self, ext: &Map<String, Value>, at: &Path<'_>) {
        let has_extensions = ext.contains_key("extension");
        let has_value = ext
            .keys()
            .any(|k| k.starts_with("value") || k.starts_with("_value"));
        if has_extensions == has_value {
            let message = if has_value {
                "ext-1: an extension must have either nested extensions or a value, not both"
            } else {
                "ext-1: an extension must have either nested extensions or a value"
            };
            self.report(at, IssueCode::Invariant, message);
        }
    }
}

/// Whether `_key[i]` exists and is not null, looked up without allocating for ordinary names.
fn companion_entry_present(obj: &Map<String, Value>, key: &str, i: usize) -> bool {
    let mut buf = [0u8; 128];
    let lookup = |name: &str| match obj.get(name) {
        Some(Value::Array(entries)) => entries.get(i).is_some_and(|e| !e.is_null()),
        _ => false,
    };
    if key.len() < buf.len() {
        buf[0] = b'_';
        buf[1..=key.len()].copy_from_slice(key.as_bytes());
        match std::str::from_utf8(&buf[..=key.len()]) {
            Ok(name) => lookup(name),
            Err(_) => false,
        }
    } else {
        lookup(&format!("_{key}"))
    }
}

fn not_in_value_set(vs: &ValueSetDef, code: &str) -> String {
    let mut message = format!(
        "{} is not in the required value set {}",
        primitive::quote(code),
        vs.canonical()
    );
    let allowed = vs.codes();
    if !allowed.is_empty() && allowed.len() <= 12 {
        let _ = write!(message, " (allowed: {})", allowed.join(", "));
    }
    message
}
