//! The subset of FHIRPath that search parameter expressions use, evaluated over JSON resources.
//!
//! Supported: member paths with implicit choice types (`Observation.value` finds `valueQuantity`,
//! `valueString`, ...), indexers with integer literals, `|`, `and` `or` `xor` `implies`,
//! `=` `!=` `~` `!~` `<` `<=` `>` `>=`, `in` `contains`, the `is`/`as` operators, string, number
//! and boolean literals, `{}`, `$this`, `%resource`/`%rootResource`/`%context`, and the
//! functions `where` `select` `all` `exists` `empty` `first` `last` `tail` `single` `skip` `take`
//! `not` `hasValue` `ofType` `as` `is` `resolve` `extension` `iif`. Anything else (arithmetic,
//! date and quantity literals, other functions) is refused when parsing, so an expression that
//! parses can always be evaluated.
//!
//! Type knowledge comes from the JSON itself: a choice element's key suffix (`valueQuantity` is
//! a Quantity), `resourceType` for resources, and the JSON kind for primitives. `resolve()` does
//! not fetch: it yields a node that knows the target type from the reference string, which is
//! what `where(resolve() is Patient)` needs.

mod ast;
mod eval;
mod lexer;
mod parser;
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

/// A parsed FHIRPath expression. Parse once, evaluate many times; cloning is cheap (shared).
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: Arc<str>,
    expr: Arc<Expr>,
}

impl Expression {
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        Ok(Expression {
            source: source.into(),
            expr: Arc::new(parser::parse(source)?),
        })
    }

    /// The text the expression was parsed from. For an expression narrowed to one resource type
    /// (see [`Expression::for_resource_type`]) this is the text of the whole original.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against a resource, which is both the input and `%resource`.
    pub fn evaluate<'a>(&'a self, resource: &'a Value) -> Vec<Node<'a>> {
        let mut out = Vec::new();
        eval::evaluate(&self.expr, &[Node::new(resource)], resource, &mut out);
        out
    }

    /// Evaluates with `focus` as the input, e.g. a composite parameter's component expression
    /// relative to one element; `resource` is `%resource`.
    pub fn evaluate_at<'a>(&'a self, focus: Node<'a>, resource: &'a Value) -> Vec<Node<'a>> {
        let mut out = Vec::new();
        eval::evaluate(&self.expr, &[focus], resource, &mut out);
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
        eval::evaluate(&self.expr, input, resource, out);
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
                    Narrowed::To(Expression {
                        source: Arc::clone(&self.source),
                        expr,
                    })
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
