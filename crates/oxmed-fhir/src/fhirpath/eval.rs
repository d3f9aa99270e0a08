//! Evaluation over `serde_json::Value`. Results are references into the resource (or into the
//! expression's own literals), so evaluating never copies the resource.
//!
//! Where the FHIRPath specification would raise an error (a singleton expected, a non-boolean in
//! a boolean context), evaluation is lenient instead: search indexing must index what it can
//! rather than fail a write.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::Value;

use super::ast::{BinOp, Expr, Function, Head, Step, Term};
use super::temporal::{self, Temporal};
use super::types::{choice_suffix_type, is_string_primitive, is_subtype};

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);
/// What the `value` field of a computed integer node points to; the number is in its kind.
static COMPUTED: Value = Value::Null;

/// One item of a FHIRPath collection: a reference to a JSON value plus what is known of its
/// FHIR type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node<'a> {
    value: &'a Value,
    /// The type declared by a choice-element key (`valueQuantity` → `Quantity`), the
    /// `resourceType` of a resource node, or the target type of an unresolved reference.
    type_hint: Option<&'a str>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Element,
    /// A resource whose `resourceType` is already in `type_hint`, so that type tests on it (one
    /// per search parameter: `Patient.name`) need no map lookup.
    Resource,
    /// Made by `resolve()` when the reference is not loaded: the node knows the target's type
    /// but has no members.
    Unresolved,
    /// An integer computed by the expression (`count()`), held here rather than in a JSON value
    /// so that evaluation needs nowhere to store it. Keeps `Node` at four words.
    Integer(u32),
}

impl<'a> Node<'a> {
    /// A node for a value whose type is only known from its JSON shape (a resource, or a value
    /// handed in by a caller).
    pub fn new(value: &'a Value) -> Self {
        match value.get("resourceType").and_then(Value::as_str) {
            Some(resource_type) => Node {
                value,
                type_hint: Some(resource_type),
                kind: Kind::Resource,
            },
            None => Node::element(value, None),
        }
    }

    /// A node whose FHIR type is known, e.g. from the element definition.
    pub fn with_type(value: &'a Value, type_name: &'a str) -> Self {
        Node::element(value, Some(type_name))
    }

    fn element(value: &'a Value, type_hint: Option<&'a str>) -> Self {
        Node {
            value,
            type_hint,
            kind: Kind::Element,
        }
    }

    /// An integer computed by the expression, such as the result of `count()`. A collection
    /// cannot have more than `u32::MAX` items in memory, so the count saturates there only in
    /// theory.
    fn integer(n: usize) -> Node<'static> {
        Node {
            value: &COMPUTED,
            type_hint: Some("integer"),
            kind: Kind::Integer(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    /// The JSON value. For the result of `resolve()` on a reference that could not be loaded,
    /// this is the `Reference` itself; for a number the expression computed (`count()`), a JSON
    /// number.
    pub fn value(&self) -> &'a Value {
        match self.kind {
            Kind::Integer(n) => interned_integer(n),
            _ => self.value,
        }
    }

    /// The value for comparisons inside the evaluator: unlike [`Node::value`] it never needs the
    /// shared table of computed numbers.
    fn item(&self) -> Cow<'a, Value> {
        match self.kind {
            Kind::Integer(n) => Cow::Owned(Value::from(n)),
            _ => Cow::Borrowed(self.value),
        }
    }

    /// Whether the node is the boolean `true` (a computed integer's `value` is null).
    pub(crate) fn is_true(&self) -> bool {
        matches!(self.value, Value::Bool(true))
    }

    /// The type known without inspecting the value: from the choice-element key the node was
    /// read from (`Quantity` for `valueQuantity`, `dateTime` for `effectiveDateTime`), the
    /// `resourceType` of a node made by [`Node::new`] for a resource, or the target type of an
    /// unresolved reference.
    pub fn type_hint(&self) -> Option<&'a str> {
        self.type_hint
    }

    /// Whether this node stands for the target of a reference that was not loaded.
    pub fn is_unresolved_reference(&self) -> bool {
        self.kind == Kind::Unresolved
    }

    /// The best-known FHIR type: the declared type, else the `resourceType` of a resource, else
    /// the primitive type implied by the JSON kind. `None` for a complex value of unknown type.
    pub fn type_name(&self) -> Option<&'a str> {
        if let Some(hint) = self.type_hint {
            return Some(hint);
        }
        match self.value {
            Value::Object(map) => map.get("resourceType").and_then(Value::as_str),
            Value::Bool(_) => Some("boolean"),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
            Value::Number(_) => Some("decimal"),
            Value::String(_) => Some("string"),
            Value::Null | Value::Array(_) => None,
        }
    }

    fn is_resource(&self) -> bool {
        match self.kind {
            Kind::Resource | Kind::Unresolved => true,
            Kind::Integer(_) => false,
            // A resource met along a path (`contained`, `Bundle.entry.resource`).
            Kind::Element => self.type_hint.is_none() && self.value.get("resourceType").is_some(),
        }
    }

    /// Whether the node is of type `wanted` (or a subtype of it). JSON strings, numbers and
    /// booleans without a declared type match the primitives they can carry.
    pub fn is_type(&self, wanted: &str) -> bool {
        if self.type_hint.is_none() {
            match self.value {
                Value::String(_) => return is_string_primitive(wanted),
                Value::Bool(_) => return wanted == "boolean",
                Value::Number(n) => {
                    let integral = n.is_i64() || n.is_u64();
                    return wanted == "decimal"
                        || (integral
                            && matches!(wanted, "integer" | "positiveInt" | "unsignedInt"));
                }
                _ => {}
            }
        }
        match self.type_name() {
            Some(actual) => is_subtype(actual, wanted, self.is_resource()),
            None => false,
        }
    }
}

/// The JSON value of a computed integer, for [`Node::value`]. Numbers up to 255 come from a
/// table filled once; a larger one is allocated the first time a caller asks for it and kept, so
/// the memory held is bounded by the distinct counts callers have looked at.
fn interned_integer(n: u32) -> &'static Value {
    static SMALL: OnceLock<Box<[Value]>> = OnceLock::new();
    static LARGE: Mutex<BTreeMap<u32, &'static Value>> = Mutex::new(BTreeMap::new());
    let small = SMALL.get_or_init(|| (0..=255u32).map(Value::from).collect());
    if let Some(value) = small.get(n as usize) {
        return value;
    }
    let mut large = LARGE.lock().unwrap_or_else(PoisonError::into_inner);
    large
        .entry(n)
        .or_insert_with(|| Box::leak(Box::new(Value::from(n))))
}

/// The bindings of external variables (`%before`, `%after`): a name, and its value or `None`
/// for the empty collection.
pub(crate) type Bindings<'v, 'a> = [(&'v str, Option<&'a Value>)];

/// What every step of one evaluation can see besides its input.
struct Env<'a, 'c> {
    resource: &'a Value,
    context: &'c [Node<'a>],
    vars: &'c Bindings<'c, 'a>,
}

pub(crate) fn evaluate<'a>(
    expr: &'a Expr,
    context: &[Node<'a>],
    resource: &'a Value,
    vars: &Bindings<'_, 'a>,
    out: &mut Vec<Node<'a>>,
) {
    let env = Env {
        resource,
        context,
        vars,
    };
    eval(expr, context, &env, out);
}

fn eval<'a>(expr: &'a Expr, focus: &[Node<'a>], env: &Env<'a, '_>, out: &mut Vec<Node<'a>>) {
    match expr {
        Expr::Term(term) => eval_term(term, focus, env, out),
        Expr::Union(branches) => {
            let start = out.len();
            let mut producing = 0;
            for branch in branches {
                let before = out.len();
                eval(branch, focus, env, out);
                producing += usize::from(out.len() > before);
            }
            // A single path yields distinct nodes of the tree, so only results of several
            // branches can overlap.
            if producing > 1 {
                remove_duplicate_nodes(out, start);
            }
        }
        Expr::Binary { op, left, right } => {
            if let Some(b) = eval_binary(*op, left, right, focus, env) {
                out.push(bool_node(b));
            }
        }
    }
}

/// `|` removes duplicates, keeping first occurrences. Identity is enough because both sides
/// point into the same resource (or the same literal). Hashed beyond a few nodes: a union over a
/// large ValueSet expansion must not be quadratic.
fn remove_duplicate_nodes<'a>(out: &mut Vec<Node<'a>>, start: usize) {
    let identity = |n: &Node<'a>| (std::ptr::from_ref(n.value) as usize, n.type_hint, n.kind);
    let mut kept = start;
    if out.len() - start <= 32 {
        for read in start..out.len() {
            let node = out[read];
            if !out[start..kept]
                .iter()
                .any(|n| identity(n) == identity(&node))
            {
                out[kept] = node;
                kept += 1;
            }
        }
    } else {
        let mut seen = HashSet::with_capacity(out.len() - start);
        for read in start..out.len() {
            let node = out[read];
            if seen.insert(identity(&node)) {
                out[kept] = node;
                kept += 1;
            }
        }
    }
    out.truncate(kept);
}

fn bool_node(b: bool) -> Node<'static> {
    Node::new(if b { &TRUE } else { &FALSE })
}

fn eval_term<'a>(term: &'a Term, focus: &[Node<'a>], env: &Env<'a, '_>, out: &mut Vec<Node<'a>>) {
    let Some((last, init)) = term.steps.split_last() else {
        eval_head(&term.head, focus, env, out);
        return;
    };
    // The input of the first step is used in place when the head keeps the focus as it is, which
    // is the usual `Type.path` on a resource of that type; the last step writes straight to
    // `out`. A two-step path thus allocates one buffer.
    let mut current = Vec::new();
    let mut input_is_focus = match &term.head {
        Head::Focus | Head::This => true,
        Head::TypeFilter(name) => focus.iter().all(|n| n.is_type(name)),
        _ => false,
    };
    if !input_is_focus {
        eval_head(&term.head, focus, env, &mut current);
    }
    let mut next = Vec::new();
    for step in init {
        next.clear();
        let input = if input_is_focus { focus } else { &current };
        apply_step(step, input, env, &mut next);
        input_is_focus = false;
        std::mem::swap(&mut current, &mut next);
    }
    let input = if input_is_focus { focus } else { &current };
    apply_step(last, input, env, out);
}

fn eval_head<'a>(head: &'a Head, focus: &[Node<'a>], env: &Env<'a, '_>, out: &mut Vec<Node<'a>>) {
    match head {
        Head::Focus | Head::This => out.extend_from_slice(focus),
        Head::TypeFilter(name) => out.extend(focus.iter().filter(|n| n.is_type(name)).copied()),
        Head::Resource => out.push(Node::new(env.resource)),
        Head::Context => out.extend_from_slice(env.context),
        Head::Variable(name) => {
            // Callers check beforehand that every variable is bound (see `Expression`), so an
            // unbound one cannot be met here; `None` binds the empty collection.
            let bound = env.vars.iter().find(|(n, _)| *n == name.as_str());
            if let Some(&(_, Some(value))) = bound {
                match value {
                    Value::Null => {}
                    Value::Array(items) => {
                        out.extend(items.iter().filter(|v| !v.is_null()).map(Node::new));
                    }
                    other => out.push(Node::new(other)),
                }
            }
        }
        Head::Literal(value) => out.push(Node::new(value)),
        Head::Empty => {}
        Head::Paren(inner) => eval(inner, focus, env, out),
    }
}

fn apply_step<'a>(step: &'a Step, input: &[Node<'a>], env: &Env<'a, '_>, out: &mut Vec<Node<'a>>) {
    match step {
        Step::Member(name) => {
            for node in input {
                member(node, name, out);
            }
        }
        Step::Index(i) => out.extend(input.get(*i).copied()),
        Step::Call(function) => call(function, input, env, out),
    }
}

/// Children named `name`, arrays flattened. When the object has no such key, keys of the form
/// `name` + a FHIR type name are the choice element `name[x]`, and the suffix gives the type.
fn member<'a>(node: &Node<'a>, name: &str, out: &mut Vec<Node<'a>>) {
    if node.kind == Kind::Unresolved {
        return;
    }
    let Value::Object(map) = node.value else {
        return;
    };
    // FHIR objects are small: one pass over the keys finds the element or its choice variants
    // faster than hashing the name, and a miss (most search parameters find nothing in a given
    // resource) costs no more than a hit.
    if let Some(child) = (map.len() > SMALL_OBJECT).then(|| map.get(name)).flatten() {
        push_flattened(child, None, out);
        return;
    }
    let start = out.len();
    for (key, child) in map {
        let Some(suffix) = key.strip_prefix(name) else {
            continue;
        };
        if suffix.is_empty() {
            out.truncate(start);
            push_flattened(child, None, out);
            return;
        }
        if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        if let Some(type_name) = choice_suffix_type(suffix) {
            push_flattened(child, Some(type_name), out);
        }
    }
}

/// Up to this many keys a linear scan beats a hash lookup.
const SMALL_OBJECT: usize = 24;

fn push_flattened<'a>(value: &'a Value, type_hint: Option<&'a str>, out: &mut Vec<Node<'a>>) {
    let node = |value| Node::element(value, type_hint);
    match value {
        Value::Null => {}
        Value::Array(items) => out.extend(items.iter().filter(|v| !v.is_null()).map(node)),
        other => out.push(node(other)),
    }
}

fn call<'a>(
    function: &'a Function,
    input: &[Node<'a>],
    env: &Env<'a, '_>,
    out: &mut Vec<Node<'a>>,
) {
    match function {
        Function::Where(criteria) => {
            let mut scratch = Vec::new();
            for node in input {
                if holds(criteria, *node, env, &mut scratch) {
                    out.push(*node);
                }
            }
        }
        Function::Select(projection) => {
            for node in input {
                eval(projection, std::slice::from_ref(node), env, out);
            }
        }
        Function::All(criteria) => {
            let mut scratch = Vec::new();
            let all = input
                .iter()
                .all(|node| holds(criteria, *node, env, &mut scratch));
            out.push(bool_node(all));
        }
        Function::Exists(None) => out.push(bool_node(!input.is_empty())),
        Function::Exists(Some(criteria)) => {
            let mut scratch = Vec::new();
            let any = input
                .iter()
                .any(|node| holds(criteria, *node, env, &mut scratch));
            out.push(bool_node(any));
        }
        Function::Empty => out.push(bool_node(input.is_empty())),
        Function::First => out.extend(input.first().copied()),
        Function::Last => out.extend(input.last().copied()),
        Function::Tail => out.extend(input.iter().skip(1).copied()),
        Function::Single => {
            if let [only] = input {
                out.push(*only);
            }
        }
        Function::Skip(n) => out.extend(input.iter().skip(*n).copied()),
        Function::Take(n) => out.extend(input.iter().take(*n).copied()),
        Function::Not => {
            if let Some(b) = to_boolean(input) {
                out.push(bool_node(!b));
            }
        }
        Function::Count => out.push(Node::integer(input.len())),
        Function::HasValue => {
            let has = matches!(input, [n] if matches!(n.kind, Kind::Integer(_))
                || (n.kind != Kind::Unresolved
                    && matches!(n.value, Value::String(_) | Value::Number(_) | Value::Bool(_))));
            out.push(bool_node(has));
        }
        Function::OfType(type_name) | Function::As(type_name) => {
            out.extend(input.iter().filter(|n| n.is_type(type_name)).copied());
        }
        Function::Is(type_name) => {
            if !input.is_empty() {
                out.push(bool_node(input.iter().all(|n| n.is_type(type_name))));
            }
        }
        Function::Resolve => {
            for node in input {
                resolve(node, env, out);
            }
        }
        Function::Extension(url) => {
            for node in input {
                let mut extensions = Vec::new();
                member(node, "extension", &mut extensions);
                out.extend(
                    extensions.into_iter().filter(|e| {
                        e.value.get("url").and_then(Value::as_str) == Some(url.as_str())
                    }),
                );
            }
        }
        Function::Iif {
            criterion,
            then,
            otherwise,
        } => {
            let mut scratch = Vec::new();
            eval(criterion, input, env, &mut scratch);
            if to_boolean(&scratch) == Some(true) {
                eval(then, input, env, out);
            } else if let Some(otherwise) = otherwise {
                eval(otherwise, input, env, out);
            }
        }
    }
}

/// Evaluates `criteria` with `node` as its input and reports whether it yields `true`.
fn holds<'a>(
    criteria: &'a Expr,
    node: Node<'a>,
    env: &Env<'a, '_>,
    scratch: &mut Vec<Node<'a>>,
) -> bool {
    scratch.clear();
    eval(criteria, std::slice::from_ref(&node), env, scratch);
    to_boolean(scratch) == Some(true)
}

/// `resolve()` without a store: a contained reference (`#id`) is looked up in the resource;
/// any other reference yields a node that knows only the target type, taken from the reference
/// string (`Patient/1`, `.../Patient/1/_history/2`) or from `Reference.type`.
fn resolve<'a>(node: &Node<'a>, env: &Env<'a, '_>, out: &mut Vec<Node<'a>>) {
    let (reference, declared_type) = match node.value {
        Value::String(s) => (Some(s.as_str()), None),
        Value::Object(map) => (
            map.get("reference").and_then(Value::as_str),
            map.get("type").and_then(Value::as_str),
        ),
        _ => return,
    };
    if let Some(local_id) = reference.and_then(|r| r.strip_prefix('#')) {
        let contained = env.resource.get("contained").and_then(Value::as_array);
        if let Some(target) = contained
            .into_iter()
            .flatten()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(local_id))
        {
            out.push(Node::new(target));
        }
        return;
    }
    let target_type = reference.and_then(reference_type).or(declared_type);
    if let Some(target_type) = target_type {
        out.push(Node {
            value: node.value,
            type_hint: Some(target_type),
            kind: Kind::Unresolved,
        });
    }
}

/// The resource type named by a literal reference: the segment before the id, ignoring a
/// trailing `/_history/n`.
pub(crate) fn reference_type(reference: &str) -> Option<&str> {
    let path = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut segments = path.rsplit('/');
    let _id = segments.next().filter(|id| !id.is_empty())?;
    let type_name = segments.next()?;
    let valid = type_name.starts_with(|c: char| c.is_ascii_uppercase())
        && type_name.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then_some(type_name)
}

/// FHIRPath's singleton evaluation of collections as booleans: empty is unknown, a single
/// boolean is itself, any other single item is true.
fn to_boolean(collection: &[Node<'_>]) -> Option<bool> {
    match collection {
        [] => None,
        [node] => match node.value {
            Value::Bool(b) => Some(*b),
            _ => Some(true),
        },
        _ => None,
    }
}

fn eval_binary<'a>(
    op: BinOp,
    left: &'a Expr,
    right: &'a Expr,
    focus: &[Node<'a>],
    env: &Env<'a, '_>,
) -> Option<bool> {
    let operand = |e: &'a Expr| {
        let mut v = Vec::new();
        eval(e, focus, env, &mut v);
        v
    };
    match op {
        BinOp::And => {
            let l = to_boolean(&operand(left));
            if l == Some(false) {
                return Some(false);
            }
            match (l, to_boolean(&operand(right))) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            }
        }
        BinOp::Or => {
            let l = to_boolean(&operand(left));
            if l == Some(true) {
                return Some(true);
            }
            match (l, to_boolean(&operand(right))) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }
        }
        BinOp::Xor => {
            let l = to_boolean(&operand(left))?;
            let r = to_boolean(&operand(right))?;
            Some(l != r)
        }
        BinOp::Implies => {
            let l = to_boolean(&operand(left));
            if l == Some(false) {
                return Some(true);
            }
            match (l, to_boolean(&operand(right))) {
                (_, Some(true)) => Some(true),
                (Some(true), Some(false)) => Some(false),
                _ => None,
            }
        }
        BinOp::Eq | BinOp::NotEq => {
            let (l, r) = (operand(left), operand(right));
            if l.is_empty() || r.is_empty() {
                return None;
            }
            let equal = collections_equal(&l, &r)?;
            Some(equal == (op == BinOp::Eq))
        }
        BinOp::Equiv | BinOp::NotEquiv => {
            let (l, r) = (operand(left), operand(right));
            let equivalent = l.len() == r.len()
                && l.iter()
                    .all(|a| r.iter().any(|b| json_equivalent(&a.item(), &b.item())));
            Some(equivalent == (op == BinOp::Equiv))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (l, r) = (operand(left), operand(right));
            let ([a], [b]) = (l.as_slice(), r.as_slice()) else {
                return None;
            };
            let ordering = compare(&a.item(), &b.item())?;
            Some(match op {
                BinOp::Lt => ordering.is_lt(),
                BinOp::Le => ordering.is_le(),
                BinOp::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
        BinOp::In | BinOp::Contains => {
            let (l, r) = (operand(left), operand(right));
            let (item, collection) = if op == BinOp::In { (l, r) } else { (r, l) };
            match item.as_slice() {
                [] => None,
                [single] => Some(
                    collection
                        .iter()
                        .any(|c| item_equal(single, c) == Some(true)),
                ),
                _ => None,
            }
        }
    }
}

/// FHIRPath `=` on two non-empty collections: equal when they have the same length and equal
/// items in the same order; unknown (`None`) when no pair differs but some pair cannot be
/// decided.
fn collections_equal(l: &[Node<'_>], r: &[Node<'_>]) -> Option<bool> {
    if l.len() != r.len() {
        return Some(false);
    }
    let mut equal = Some(true);
    for (a, b) in l.iter().zip(r) {
        match item_equal(a, b) {
            Some(true) => {}
            Some(false) => return Some(false),
            None => equal = None,
        }
    }
    equal
}

/// FHIRPath `=` on two items. Two different strings that both read as dates (or as times) are
/// compared as such, so that `2020-01-01T10:00:00Z` equals `2020-01-01T11:00:00+01:00` and a
/// date equal to a dateTime up to the date's precision is unknown (`None`). Everything else,
/// complex values included, is [`json_equal`].
fn item_equal(a: &Node<'_>, b: &Node<'_>) -> Option<bool> {
    let (a, b) = (a.item(), b.item());
    if let (Value::String(x), Value::String(y)) = (a.as_ref(), b.as_ref())
        && x != y
        && let (Some(x), Some(y)) = (Temporal::parse(x), Temporal::parse(y))
    {
        return temporal::compare(x, y).map(Ordering::is_eq);
    }
    Some(json_equal(&a, &b))
}

/// FHIRPath `=` on two items as deep equality: numbers compare by value (`1` equals `1.0`),
/// strings and booleans exactly, objects by their keys and values (in any key order), arrays
/// item by item in order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// FHIRPath `~`: strings ignore case and collapse whitespace.
fn json_equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            };
            norm(x) == norm(y)
        }
        _ => json_equal(a, b),
    }
}

/// FHIRPath `<` and friends on two items: numbers by value, two strings that both read as
/// dates (or both as times) by [`temporal::compare`] (unknown when their precisions differ),
/// other strings by their characters' code points. Anything else is not comparable.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => match (Temporal::parse(x), Temporal::parse(y)) {
            (Some(x), Some(y)) => temporal::compare(x, y),
            _ => Some(x.cmp(y)),
        },
        _ => None,
    }
}
