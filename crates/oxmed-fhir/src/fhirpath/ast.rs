//! The parsed form of an expression. Only constructs the evaluator implements are representable,
//! so an expression that parses always evaluates.

use std::sync::Arc;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Term(Term),
    /// `a | b | c`, flattened so that per-resource-type branch selection can see every branch.
    /// Branches are shared so that narrowing to a resource type copies no syntax tree.
    Union(Vec<Arc<Expr>>),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
}

/// A starting point followed by a chain of invocations, e.g. `Observation.value.ofType(Quantity)`.
/// The `is`/`as` operators become trailing steps (`x as T` is `x.as(T)`): they bind more tightly
/// than every operator the evaluator supports, so the rewrite keeps the meaning.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Term {
    pub head: Head,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Head {
    /// The input collection itself: the term starts with a member name or a function call.
    Focus,
    /// A leading type name such as `Observation` in `Observation.code`: keeps the input items of
    /// that type.
    TypeFilter(String),
    /// `$this`: the item being iterated, which is the input of the criteria being evaluated.
    This,
    /// `%resource` / `%rootResource`.
    Resource,
    /// `%context`: the collection the whole expression started from.
    Context,
    /// Any other `%name`: an external variable such as `%before` / `%after` of an AccessPolicy
    /// write constraint, bound by the caller of `Expression::evaluate_with`.
    Variable(String),
    Literal(Value),
    /// `{}`.
    Empty,
    Paren(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Member(String),
    Index(usize),
    Call(Function),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Function {
    Where(Box<Expr>),
    Select(Box<Expr>),
    All(Box<Expr>),
    Exists(Option<Box<Expr>>),
    Empty,
    First,
    Last,
    Tail,
    Single,
    Skip(usize),
    Take(usize),
    Not,
    Count,
    HasValue,
    OfType(String),
    As(String),
    Is(String),
    Resolve,
    Extension(String),
    Iif {
        criterion: Box<Expr>,
        then: Box<Expr>,
        otherwise: Option<Box<Expr>>,
    },
}

impl Function {
    fn collect_variables(&self, out: &mut Vec<String>) {
        match self {
            Function::Where(e) | Function::Select(e) | Function::All(e) => e.collect_variables(out),
            Function::Exists(Some(e)) => e.collect_variables(out),
            Function::Iif {
                criterion,
                then,
                otherwise,
            } => {
                criterion.collect_variables(out);
                then.collect_variables(out);
                if let Some(otherwise) = otherwise {
                    otherwise.collect_variables(out);
                }
            }
            // Listed one by one so that a function added with an expression argument cannot
            // hide a variable from `Expression::variables`.
            Function::Exists(None)
            | Function::Empty
            | Function::First
            | Function::Last
            | Function::Tail
            | Function::Single
            | Function::Skip(_)
            | Function::Take(_)
            | Function::Not
            | Function::Count
            | Function::HasValue
            | Function::OfType(_)
            | Function::As(_)
            | Function::Is(_)
            | Function::Resolve
            | Function::Extension(_) => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Implies,
    Or,
    Xor,
    And,
    In,
    Contains,
    Eq,
    NotEq,
    Equiv,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Expr {
    /// Appends the names of the external variables the expression uses, each once, in order of
    /// first use.
    pub(crate) fn collect_variables(&self, out: &mut Vec<String>) {
        match self {
            Expr::Term(term) => {
                match &term.head {
                    Head::Variable(name) if !out.iter().any(|n| n == name) => {
                        out.push(name.clone());
                    }
                    Head::Paren(inner) => inner.collect_variables(out),
                    _ => {}
                }
                for step in &term.steps {
                    if let Step::Call(function) = step {
                        function.collect_variables(out);
                    }
                }
            }
            Expr::Union(branches) => {
                for branch in branches {
                    branch.collect_variables(out);
                }
            }
            Expr::Binary { left, right, .. } => {
                left.collect_variables(out);
                right.collect_variables(out);
            }
        }
    }

    /// Appends the element paths the expression reads from its input, relative to the resource
    /// (`Patient.name.family` → `name.family`, `Observation.value as Quantity` → `value`): each
    /// term's member names from its start up to the first step that is not one (`where`,
    /// `resolve`, ...; `ofType`, `as` and indexes are looked through). Arguments of functions
    /// read below the path already listed, so they add nothing.
    pub(crate) fn collect_paths(&self, out: &mut Vec<String>) {
        match self {
            Expr::Term(term) => {
                let mut path: Vec<&str> = Vec::new();
                match &term.head {
                    Head::TypeFilter(_) | Head::Focus | Head::This | Head::Resource => {}
                    Head::Paren(inner) => {
                        inner.collect_paths(out);
                        return;
                    }
                    _ => return,
                }
                for step in &term.steps {
                    match step {
                        Step::Member(name) => path.push(name),
                        Step::Index(_) => {}
                        Step::Call(Function::OfType(_) | Function::As(_)) => {}
                        Step::Call(_) => break,
                    }
                }
                if !path.is_empty() {
                    let p = path.join(".");
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
            Expr::Union(branches) => {
                for branch in branches {
                    branch.collect_paths(out);
                }
            }
            Expr::Binary { left, right, .. } => {
                left.collect_paths(out);
                right.collect_paths(out);
            }
        }
    }

    /// The resource type a branch starts from (`Observation` in `Observation.subject`), looking
    /// through parentheses. `None` when the branch does not start with a type name, so that the
    /// caller keeps it for every type.
    pub(crate) fn leading_type(&self) -> Option<&str> {
        match self {
            Expr::Term(term) => match &term.head {
                Head::TypeFilter(name) => Some(name),
                Head::Paren(inner) => inner.leading_type(),
                _ => None,
            },
            Expr::Union(branches) => {
                let first = branches.first()?.leading_type()?;
                branches
                    .iter()
                    .all(|b| b.leading_type() == Some(first))
                    .then_some(first)
            }
            Expr::Binary { left, right, .. } => {
                let l = left.leading_type()?;
                (right.leading_type() == Some(l)).then_some(l)
            }
        }
    }
}
