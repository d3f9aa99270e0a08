//! The subset of FHIRPath that search parameter expressions and AccessPolicy write constraints
//! use, evaluated over JSON resources.
//!
//! Supported: member paths with implicit choice types (`Observation.value` finds `valueQuantity`,
//! `valueString`, ...), indexers with integer literals, `|`, `and` `or` `xor` `implies` (with
//! FHIRPath's three-valued logic: the empty collection is unknown), `=` `!=` `~` `!~` `<` `<=`
//! `>` `>=`, `in` `contains`, the `is`/`as` operators, string, number and boolean literals, `{}`,
//! `$this`, `%resource`/`%rootResource`/`%context`, the constants `%ucum` `%sct` `%loinc`
//! `` %`vs-name` `` `` %`ext-name` ``, external variables (any other `%name`, bound by
//! [`Expression::evaluate_with`]), and the functions `where` `select` `all` `exists` `empty`
//! `first` `last` `tail` `single` `skip` `take` `not` `count` `hasValue` `ofType` `as` `is`
//! `resolve` `extension` `iif`. Anything else (arithmetic, date and quantity literals, other
//! functions) is refused when parsing, so an expression that parses can always be evaluated.
//!
//! `=` is deep equality: two References, Codings or whole resources are equal when every
//! element is. Two strings that both read as dates (or as times) compare as such: by precision,
//! in UTC, and unknown when one is less precise than the other and equal as far as it goes.
//!
//! Type knowledge comes from the JSON itself: a choice element's key suffix (`valueQuantity` is
//! a Quantity), `resourceType` for resources, and the JSON kind for primitives. `resolve()` does
//! not fetch: it yields a node that knows the target type from the reference string, which is
//! what `where(resolve() is Patient)` needs.

mod ast;
mod eval;
mod lexer;
mod parser;
mod temporal;
#[cfg(test)]
mod tests;
mod types;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;

pub use eval::Node;

use ast::Expr;

/// Why an expression could not be parsed. Positions are byte offsets into the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unexpected character {ch:?} at {pos}")]
    UnexpectedChar { ch: char, pos: usize },
    #[error("unterminated string or delimited identifier starting at {pos}")]
    UnterminatedString { pos: usize },
    #[error("unterminated comment starting at {pos}")]
    UnterminatedComment { pos: usize },
    #[error("invalid escape sequence at {pos}")]
    InvalidEscape { pos: usize },
    #[error("unexpected {found} at {pos}, expected {expected}")]
    Unexpected {
        found: String,
        expected: &'static str,
        pos: usize,
    },
    #[error("unexpected end of expression, expected {expected}")]
    UnexpectedEnd { expected: &'static str },
    #[error("unknown function {name}() at {pos}")]
    UnknownFunction { name: String, pos: usize },
    #[error("{name}() takes {expected} argument(s) (at {pos})")]
    Arity {
        name: String,
        expected: &'static str,
        pos: usize,
    },
    #[error("not supported: {what} (at {pos})")]
    Unsupported { what: String, pos: usize },
    #[error("expression nested too deeply (at {pos})")]
    TooDeep { pos: usize },
}

/// Whether `nodes` is exactly one boolean `true`: how a constraint or an invariant holds. The
/// empty collection (unknown), `false`, several items or any other single value do not.
pub fn is_true(nodes: &[Node<'_>]) -> bool {
    matches!(nodes, [node] if node.is_true())
}

/// A parsed FHIRPath expression. Parse once, evaluate many times; cloning is cheap (shared).
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: Arc<str>,
    expr: Arc<Expr>,
    /// The external variables the expression names, each once.
    variables: Arc<[String]>,
}

impl Expression {
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        Ok(Expression::new(
            source.into(),
            Arc::new(parser::parse(source)?),
        ))
    }

    fn new(source: Arc<str>, expr: Arc<Expr>) -> Self {
        let mut variables = Vec::new();
        expr.collect_variables(&mut variables);
        Expression {
            source,
            expr,
            variables: variables.into(),
        }
    }

    /// The external variables the expression names (`before` for `%before`), each once, in
    /// order of first use. The `%resource`, `%rootResource` and `%context` of every evaluation and
    /// the constants of the specifications (`%loinc`, ...) are not variables. A caller that
    /// knows which variables it binds should refuse an expression naming any other.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The element paths the expression reads from the resource, dotted and relative to it
    /// (`Patient.name.family | Patient.birthDate` → `name.family`, `birthDate`): what a search
    /// on it reveals of the resource.
    pub fn element_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.expr.collect_paths(&mut out);
        out
    }

    /// Evaluates against `resource`, which is the input and `%resource`, with the external
    /// variables bound by `vars`: each name (without `%`) and its value, `None` being the empty
    /// collection, as `%before` is on a create. A JSON array is bound as a collection of its
    /// items.
    ///
    /// Fails closed: when the expression names a variable that `vars` does not bind, the result
    /// is empty, so it is never [`is_true`]. Check [`Expression::variables`] beforehand to tell
    /// that apart from a genuinely empty result.
    pub fn evaluate_with<'a>(
        &'a self,
        resource: &'a Value,
        vars: &[(&str, Option<&'a Value>)],
    ) -> Vec<Node<'a>> {
        let mut out = Vec::new();
        let all_bound = self
            .variables
            .iter()
            .all(|v| vars.iter().any(|(name, _)| name == v));
        if all_bound {
            eval::evaluate(&self.expr, &[Node::new(resource)], resource, vars, &mut out);
        }
        out
    }

    /// The text the expression was parsed from. For an expression narrowed to one resource type
    /// (see [`Expression::for_resource_type`]) this is the text of the whole original.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against a resource, which is both the input and `%resource`. An expression
    /// that names external variables yields nothing here: see [`Expression::evaluate_with`].
    pub fn evaluate<'a>(&'a self, resource: &'a Value) -> Vec<Node<'a>> {
        let mut out = Vec::new();
        self.evaluate_into(&[Node::new(resource)], resource, &mut out);
        out
    }

    /// Evaluates with `focus` as the input, e.g. a composite parameter's component expression
    /// relative to one element; `resource` is `%resource`. Like [`Expression::evaluate`], nothing
    /// for an expression that names external variables.
    pub fn evaluate_at<'a>(&'a self, focus: Node<'a>, resource: &'a Value) -> Vec<Node<'a>> {
        let mut out = Vec::new();
        self.evaluate_into(&[focus], resource, &mut out);
        out
    }

    /// Like [`Expression::evaluate_at`] for a whole input collection, appending to `out` so that
    /// a caller can reuse one buffer.
    pub fn evaluate_into<'a>(
        &'a self,
        input: &[Node<'a>],
        resource: &'a Value,
        out: &mut Vec<Node<'a>>,
    ) {
        // No variable is bound here, and an unbound variable must not read as empty.
        if self.variables.is_empty() {
            eval::evaluate(&self.expr, input, resource, &[], out);
        }
    }

    /// The resource type the expression starts from (`Observation` in `Observation.code`), when
    /// every branch starts from the same one.
    pub fn leading_type(&self) -> Option<&str> {
        self.expr.leading_type()
    }

    /// The part of a union that can match a resource of `resource_type`: branches that start
    /// from another resource type (`CarePlan.subject` in a parameter shared by many types) are
    /// dropped, branches that start from `Resource`, `DomainResource` or no type are kept.
    pub fn for_resource_type(&self, resource_type: &str) -> Narrowed {
        let applies = |e: &Expr| match e.leading_type() {
            None => true,
            Some(leading) => types::is_subtype(resource_type, leading, true),
        };
        match self.expr.as_ref() {
            Expr::Union(branches) => {
                let kept: Vec<&Arc<Expr>> = branches.iter().filter(|b| applies(b)).collect();
                if kept.len() == branches.len() {
                    Narrowed::Unchanged
                } else if kept.is_empty() {
                    Narrowed::Nothing
                } else {
                    let expr = match kept.as_slice() {
                        [single] => Arc::clone(single),
                        _ => Arc::new(Expr::Union(kept.into_iter().cloned().collect())),
                    };
                    Narrowed::To(Expression::new(Arc::clone(&self.source), expr))
                }
            }
            other if applies(other) => Narrowed::Unchanged,
            _ => Narrowed::Nothing,
        }
    }
}

/// The result of [`Expression::for_resource_type`].
#[derive(Debug, Clone, PartialEq)]
pub enum Narrowed {
    /// Every branch may apply.
    Unchanged,
    /// No branch can match a resource of that type.
    Nothing,
    /// Only these branches apply.
    To(Expression),
}

impl FromStr for Expression {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Expression::parse(s)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
