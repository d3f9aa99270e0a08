//! Recursive-descent parser following the precedence table of the FHIRPath specification
//! (lowest first): `implies`; `or` `xor`; `and`; `in` `contains`; `=` `~` `!=` `!~`;
//! `<` `>` `<=` `>=`; `|`; `is` `as`; `+` `-` `&`; `*` `/` `div` `mod`; unary; invocation.
//! Arithmetic is recognised and refused: the evaluator hands out references into the resource
//! and computes no values beyond booleans and `count()`.

use std::sync::Arc;

use serde_json::{Number, Value};

use super::ParseError;
use super::ast::{BinOp, Expr, Function, Head, Step, Term};
use super::lexer::{Spanned, Token, tokenize};
use super::types::canonical_type_name;

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: src.len(),
        depth: 0,
    };
    let expr = parser.expression()?;
    match parser.peek() {
        None => Ok(expr),
        Some(_) => Err(parser.unexpected("end of expression")),
    }
}

struct Parser<'s> {
    tokens: Vec<Spanned<'s>>,
    pos: usize,
    /// Offset reported for errors at the end of the input.
    end: usize,
    /// Nesting of parentheses and function arguments, bounded so that hostile input cannot
    /// exhaust the stack.
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<&Token<'s>> {
        self.tokens.get(self.pos).map(|s| &s.token)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token<'s>> {
        self.tokens.get(self.pos + ahead).map(|s| &s.token)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |s| s.pos)
    }

    fn advance(&mut self) -> Option<Token<'s>> {
        let token = self.tokens.get(self.pos).map(|s| s.token.clone());
        if token.is_some() {
            self.pos += 1;
        }
        token
    }

    /// Consumes the next token only when `f` accepts it.
    fn take<T>(&mut self, f: impl FnOnce(&Token<'s>) -> Option<T>) -> Option<T> {
        let value = f(self.peek()?)?;
        self.pos += 1;
        Some(value)
    }

    fn unexpected(&self, expected: &'static str) -> ParseError {
        match self.peek() {
            Some(token) => ParseError::Unexpected {
                found: token.describe(),
                expected,
                pos: self.offset(),
            },
            None => ParseError::UnexpectedEnd { expected },
        }
    }

    fn expect(&mut self, token: Token<'s>, expected: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(&token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Whether the next token is the (undelimited) keyword `word`.
    fn at_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident { name, delimited: false }) if name == word)
    }

    fn expression(&mut self) -> Result<Expr, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::TooDeep { pos: self.offset() });
        }
        self.depth += 1;
        let expr = self.implies();
        self.depth -= 1;
        expr
    }

    fn binary_level(
        &mut self,
        ops: &[(&str, BinOp)],
        next: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let mut left = next(self)?;
        'outer: loop {
            for (word, op) in ops {
                if self.at_keyword(word) {
                    self.pos += 1;
                    let right = next(self)?;
                    left = Expr::Binary {
                        op: *op,
                        left: Box::new(left),
                        right: Box::new(right),
                    };
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn implies(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("implies", BinOp::Implies)], Self::or)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("or", BinOp::Or), ("xor", BinOp::Xor)], Self::and)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("and", BinOp::And)], Self::membership)
    }

    fn membership(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(
            &[("in", BinOp::In), ("contains", BinOp::Contains)],
            Self::equality,
        )
    }

    fn equality(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.inequality()?;
        loop {
            let op = match self.peek() {
                Some(Token::Eq) => BinOp::Eq,
                Some(Token::NotEq) => BinOp::NotEq,
                Some(Token::Equiv) => BinOp::Equiv,
                Some(Token::NotEquiv) => BinOp::NotEquiv,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.inequality()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn inequality(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.union()?;
        loop {
            let op = match self.peek() {
                Some(Token::Lt) => BinOp::Lt,
                Some(Token::Le) => BinOp::Le,
                Some(Token::Gt) => BinOp::Gt,
                Some(Token::Ge) => BinOp::Ge,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.union()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn union(&mut self) -> Result<Expr, ParseError> {
        let first = self.type_expression()?;
        if self.peek() != Some(&Token::Pipe) {
            return Ok(first);
        }
        let mut branches = vec![Arc::new(first)];
        while self.peek() == Some(&Token::Pipe) {
            self.pos += 1;
            branches.push(Arc::new(self.type_expression()?));
        }
        Ok(Expr::Union(branches))
    }

    fn type_expression(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.additive()?;
        loop {
            let is = self.at_keyword("is");
            if !is && !self.at_keyword("as") {
                return Ok(expr);
            }
            self.pos += 1;
            let type_name = self.type_specifier()?;
            let function = if is {
                Function::Is(type_name)
            } else {
                Function::As(type_name)
            };
            expr = append_step(expr, Step::Call(function));
        }
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let expr = self.multiplicative()?;
        if matches!(self.peek(), Some(Token::Plus | Token::Minus | Token::Amp)) {
            return Err(self.unsupported("arithmetic and string concatenation"));
        }
        Ok(expr)
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let expr = self.unary()?;
        if matches!(self.peek(), Some(Token::Star | Token::Slash))
            || self.at_keyword("div")
            || self.at_keyword("mod")
        {
            return Err(self.unsupported("arithmetic"));
        }
        Ok(expr)
    }

    fn unsupported(&self, what: &str) -> ParseError {
        ParseError::Unsupported {
            what: what.to_string(),
            pos: self.offset(),
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let negative = match self.peek() {
            Some(Token::Minus) => true,
            Some(Token::Plus) => false,
            _ => return self.invocation(),
        };
        self.pos += 1;
        // Only a signed number literal can be represented without computing a new value.
        let pos = self.offset();
        let Some(text) = self.take(|t| match t {
            Token::Number(text) => Some(*text),
            _ => None,
        }) else {
            return Err(self.unsupported("unary operators on non-literals"));
        };
        let text = if negative {
            format!("-{text}")
        } else {
            text.to_string()
        };
        let term = Term {
            head: Head::Literal(number_literal(&text, pos)?),
            steps: Vec::new(),
        };
        self.postfix(term)
    }

    fn invocation(&mut self) -> Result<Expr, ParseError> {
        let term = self.primary()?;
        self.postfix(term)
    }

    fn postfix(&mut self, mut term: Term) -> Result<Expr, ParseError> {
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.pos += 1;
                    let pos = self.offset();
                    let Some(Token::Ident { name, .. }) = self.peek().cloned() else {
                        return Err(self.unexpected("a member or function name"));
                    };
                    self.pos += 1;
                    if self.peek() == Some(&Token::LParen) {
                        term.steps.push(Step::Call(self.function(&name, pos)?));
                    } else {
                        term.steps.push(Step::Member(name.into_owned()));
                    }
                }
                Some(Token::LBracket) => {
                    self.pos += 1;
                    let Some(index) = self.take(|t| match t {
                        Token::Number(n) => n.parse::<usize>().ok(),
                        _ => None,
                    }) else {
                        return Err(self.unsupported("indexers other than integer literals"));
                    };
                    self.expect(Token::RBracket, "`]`")?;
                    term.steps.push(Step::Index(index));
                }
                _ => return Ok(Expr::Term(term)),
            }
        }
    }

    fn primary(&mut self) -> Result<Term, ParseError> {
        let pos = self.offset();
        let Some(token) = self.advance() else {
            return Err(ParseError::UnexpectedEnd {
                expected: "an expression",
            });
        };
        let head = match token {
            Token::Number(text) => Head::Literal(number_literal(text, pos)?),
            Token::Str(s) => Head::Literal(Value::String(s.into_owned())),
            Token::LBrace => {
                self.expect(Token::RBrace, "`}`")?;
                Head::Empty
            }
            Token::LParen => {
                let inner = self.expression()?;
                self.expect(Token::RParen, "`)`")?;
                Head::Paren(Box::new(inner))
            }
            Token::Constant(name) => constant(name.as_ref()),
            Token::Special(name) => match name {
                "this" => Head::This,
                _ => {
                    return Err(ParseError::Unsupported {
                        what: format!("${name}"),
                        pos,
                    });
                }
            },
            Token::Ident { name, delimited } => {
                if self.peek() == Some(&Token::LParen) {
                    let function = self.function(&name, pos)?;
                    return Ok(Term {
                        head: Head::Focus,
                        steps: vec![Step::Call(function)],
                    });
                }
                if !delimited && (name == "true" || name == "false") {
                    Head::Literal(Value::Bool(name == "true"))
                } else if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    // FHIR element names never start with a capital, so a capitalised name at
                    // the start of a term is a type, as in `Observation.code`.
                    Head::TypeFilter(name.into_owned())
                } else {
                    return Ok(Term {
                        head: Head::Focus,
                        steps: vec![Step::Member(name.into_owned())],
                    });
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("an expression"));
            }
        };
        Ok(Term {
            head,
            steps: Vec::new(),
        })
    }

    fn type_specifier(&mut self) -> Result<String, ParseError> {
        let Some(Token::Ident { name, .. }) = self.peek().cloned() else {
            return Err(self.unexpected("a type name"));
        };
        self.pos += 1;
        let mut name = name.into_owned();
        // A qualified name such as `FHIR.Patient`; a dot after a type name starts nothing else.
        while self.peek() == Some(&Token::Dot)
            && matches!(self.peek_at(1), Some(Token::Ident { .. }))
            && (name == "FHIR" || name == "System")
        {
            self.pos += 1;
            if let Some(Token::Ident { name: part, .. }) = self.advance() {
                name = format!("{name}.{part}");
            }
        }
        Ok(canonical_type_name(&name))
    }

    /// Parses the argument list of `name(` (the current token is the opening parenthesis).
    fn function(&mut self, name: &str, pos: usize) -> Result<Function, ParseError> {
        self.expect(Token::LParen, "`(`")?;
        let function = match name {
            "ofType" | "as" | "is" => {
                let type_name = self.type_specifier()?;
                match name {
                    "ofType" => Function::OfType(type_name),
                    "as" => Function::As(type_name),
                    _ => Function::Is(type_name),
                }
            }
            "extension" => {
                let Some(url) = self.take(|t| match t {
                    Token::Str(url) => Some(url.to_string()),
                    _ => None,
                }) else {
                    return Err(self.unexpected("an extension url string"));
                };
                Function::Extension(url)
            }
            "skip" | "take" => {
                let count = self
                    .take(|t| match t {
                        Token::Number(n) => n.parse::<usize>().ok(),
                        _ => None,
                    })
                    .ok_or(ParseError::Unsupported {
                        what: format!("{name}() with a non-integer-literal argument"),
                        pos,
                    })?;
                if name == "skip" {
                    Function::Skip(count)
                } else {
                    Function::Take(count)
                }
            }
            _ => {
                let args = self.arguments()?;
                return build_function(name, args, pos);
            }
        };
        self.expect(Token::RParen, "`)`")?;
        Ok(function)
    }

    /// Comma-separated expressions up to and including the closing parenthesis.
    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut args = Vec::new();
        if self.peek() == Some(&Token::RParen) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expression()?);
            match self.peek() {
                Some(Token::Comma) => self.pos += 1,
                Some(Token::RParen) => {
                    self.pos += 1;
                    return Ok(args);
                }
                _ => return Err(self.unexpected("`,` or `)`")),
            }
        }
    }
}

fn build_function(name: &str, args: Vec<Expr>, pos: usize) -> Result<Function, ParseError> {
    let arity = |expected: &'static str| ParseError::Arity {
        name: name.to_string(),
        expected,
        pos,
    };
    let mut args = args.into_iter().map(Box::new);
    let count = args.len();
    let mut one = |expected| args.next().ok_or_else(|| arity(expected));
    let function = match (name, count) {
        ("where", 1) => Function::Where(one("1")?),
        ("select", 1) => Function::Select(one("1")?),
        ("all", 1) => Function::All(one("1")?),
        ("exists", 0) => Function::Exists(None),
        ("exists", 1) => Function::Exists(Some(one("0 or 1")?)),
        ("empty", 0) => Function::Empty,
        ("first", 0) => Function::First,
        ("last", 0) => Function::Last,
        ("tail", 0) => Function::Tail,
        ("single", 0) => Function::Single,
        ("not", 0) => Function::Not,
        ("count", 0) => Function::Count,
        ("hasValue", 0) => Function::HasValue,
        ("resolve", 0) => Function::Resolve,
        ("iif", 2 | 3) => {
            let criterion = one("2 or 3")?;
            let then = one("2 or 3")?;
            let otherwise = args.next();
            Function::Iif {
                criterion,
                then,
                otherwise,
            }
        }
        ("where" | "select" | "all", _) => return Err(arity("1")),
        ("exists", _) => return Err(arity("0 or 1")),
        ("iif", _) => return Err(arity("2 or 3")),
        (
            "empty" | "first" | "last" | "tail" | "single" | "not" | "count" | "hasValue"
            | "resolve",
            _,
        ) => {
            return Err(arity("0"));
        }
        _ => {
            return Err(ParseError::UnknownFunction {
                name: name.to_string(),
                pos,
            });
        }
    };
    Ok(function)
}

/// `%name`: the constants of the FHIRPath and FHIR specifications, else an external variable
/// whose value the caller binds (`%before`, `%after`).
fn constant(name: &str) -> Head {
    let url = |u: String| Head::Literal(Value::String(u));
    match name {
        "resource" | "rootResource" => Head::Resource,
        "context" => Head::Context,
        "ucum" => url("http://unitsofmeasure.org".into()),
        "sct" => url("http://snomed.info/sct".into()),
        "loinc" => url("http://loinc.org".into()),
        _ => {
            if let Some(vs) = name.strip_prefix("vs-") {
                url(format!("http://hl7.org/fhir/ValueSet/{vs}"))
            } else if let Some(ext) = name.strip_prefix("ext-") {
                url(format!("http://hl7.org/fhir/StructureDefinition/{ext}"))
            } else {
                Head::Variable(name.to_string())
            }
        }
    }
}

fn number_literal(text: &str, pos: usize) -> Result<Value, ParseError> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or(ParseError::Unsupported {
            what: format!("number {text}"),
            pos,
        })
}

/// `x is T` / `x as T` become a trailing `.is(T)` / `.as(T)` step on `x`.
fn append_step(expr: Expr, step: Step) -> Expr {
    match expr {
        Expr::Term(mut term) => {
            term.steps.push(step);
            Expr::Term(term)
        }
        other => Expr::Term(Term {
            head: Head::Paren(Box::new(other)),
            steps: vec![step],
        }),
    }
}
