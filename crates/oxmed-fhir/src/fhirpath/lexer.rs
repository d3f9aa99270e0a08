//! Tokens of the FHIRPath grammar. Quantity and date/time literals are recognised only so that
//! they can be refused with a precise error: no search parameter needs them.

use std::borrow::Cow;

use super::ParseError;

/// Tokens borrow from the source: parsing every search parameter at start-up should not
/// allocate per token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token<'s> {
    /// An identifier; `delimited` is true for `` `name` `` which is never a keyword.
    Ident {
        name: Cow<'s, str>,
        delimited: bool,
    },
    Str(Cow<'s, str>),
    /// The literal as written, so that integers stay exact.
    Number(&'s str),
    /// `%name` (external constant).
    Constant(Cow<'s, str>),
    /// `$this`, `$index`, `$total`.
    Special(&'s str),
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Pipe,
    Eq,
    NotEq,
    Equiv,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Amp,
}

impl Token<'_> {
    pub(crate) fn describe(&self) -> String {
        match self {
            Token::Ident { name, .. } => format!("identifier `{name}`"),
            Token::Str(s) => format!("string '{s}'"),
            Token::Number(n) => format!("number {n}"),
            Token::Constant(c) => format!("%{c}"),
            Token::Special(s) => format!("${s}"),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Token::Dot => ".",
            Token::Comma => ",",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::Pipe => "|",
            Token::Eq => "=",
            Token::NotEq => "!=",
            Token::Equiv => "~",
            Token::NotEquiv => "!~",
            Token::Lt => "<",
            Token::Le => "<=",
            Token::Gt => ">",
            Token::Ge => ">=",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::Amp => "&",
            _ => "?",
        }
    }
}

/// A token and the byte offset where it starts, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned<'s> {
    pub token: Token<'s>,
    pub pos: usize,
}

pub(crate) fn tokenize<'s>(src: &'s str) -> Result<Vec<Spanned<'s>>, ParseError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = |t: Token<'s>| Spanned {
            token: t,
            pos: start,
        };
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let rest = &src[i + 2..];
                let end = rest
                    .find("*/")
                    .ok_or(ParseError::UnterminatedComment { pos: start })?;
                i += 2 + end + 2;
            }
            b'.' => {
                tokens.push(single(Token::Dot));
                i += 1;
            }
            b',' => {
                tokens.push(single(Token::Comma));
                i += 1;
            }
            b'(' => {
                tokens.push(single(Token::LParen));
                i += 1;
            }
            b')' => {
                tokens.push(single(Token::RParen));
                i += 1;
            }
            b'[' => {
                tokens.push(single(Token::LBracket));
                i += 1;
            }
            b']' => {
                tokens.push(single(Token::RBracket));
                i += 1;
            }
            b'{' => {
                tokens.push(single(Token::LBrace));
                i += 1;
            }
            b'}' => {
                tokens.push(single(Token::RBrace));
                i += 1;
            }
            b'|' => {
                tokens.push(single(Token::Pipe));
                i += 1;
            }
            b'=' => {
                tokens.push(single(Token::Eq));
                i += 1;
            }
            b'~' => {
                tokens.push(single(Token::Equiv));
                i += 1;
            }
            b'+' => {
                tokens.push(single(Token::Plus));
                i += 1;
            }
            b'-' => {
                tokens.push(single(Token::Minus));
                i += 1;
            }
            b'*' => {
                tokens.push(single(Token::Star));
                i += 1;
            }
            b'/' => {
                tokens.push(single(Token::Slash));
                i += 1;
            }
            b'&' => {
                tokens.push(single(Token::Amp));
                i += 1;
            }
            b'!' => match bytes.get(i + 1) {
                Some(b'=') => {
                    tokens.push(single(Token::NotEq));
                    i += 2;
                }
                Some(b'~') => {
                    tokens.push(single(Token::NotEquiv));
                    i += 2;
                }
                _ => {
                    return Err(ParseError::UnexpectedChar {
                        ch: '!',
                        pos: start,
                    });
                }
            },
            b'<' | b'>' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                let t = match (c, eq) {
                    (b'<', true) => Token::Le,
                    (b'<', false) => Token::Lt,
                    (_, true) => Token::Ge,
                    (_, false) => Token::Gt,
                };
                tokens.push(single(t));
                i += if eq { 2 } else { 1 };
            }
            b'\'' => {
                let (s, next) = lex_quoted(src, i, b'\'')?;
                tokens.push(single(Token::Str(s)));
                i = next;
            }
            b'`' => {
                let (name, next) = lex_quoted(src, i, b'`')?;
                tokens.push(single(Token::Ident {
                    name,
                    delimited: true,
                }));
                i = next;
            }
            b'%' => {
                i += 1;
                let name = if bytes.get(i) == Some(&b'`') {
                    let (name, next) = lex_quoted(src, i, b'`')?;
                    i = next;
                    name
                } else if bytes.get(i) == Some(&b'\'') {
                    let (name, next) = lex_quoted(src, i, b'\'')?;
                    i = next;
                    name
                } else {
                    let end = ident_end(bytes, i);
                    if end == i {
                        return Err(ParseError::UnexpectedChar {
                            ch: '%',
                            pos: start,
                        });
                    }
                    let name = Cow::Borrowed(&src[i..end]);
                    i = end;
                    name
                };
                tokens.push(single(Token::Constant(name)));
            }
            b'$' => {
                let end = ident_end(bytes, i + 1);
                if end == i + 1 {
                    return Err(ParseError::UnexpectedChar {
                        ch: '$',
                        pos: start,
                    });
                }
                tokens.push(single(Token::Special(&src[i + 1..end])));
                i = end;
            }
            b'@' => {
                return Err(ParseError::Unsupported {
                    what: "date/time literals".into(),
                    pos: start,
                });
            }
            b'0'..=b'9' => {
                let mut end = i;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                // A dot only belongs to the number when a digit follows: `1.exists()` is a call.
                if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
                    end += 1;
                    while end < bytes.len() && bytes[end].is_ascii_digit() {
                        end += 1;
                    }
                }
                tokens.push(single(Token::Number(&src[i..end])));
                i = end;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let end = ident_end(bytes, i);
                tokens.push(single(Token::Ident {
                    name: Cow::Borrowed(&src[i..end]),
                    delimited: false,
                }));
                i = end;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(ParseError::UnexpectedChar { ch, pos: start });
            }
        }
    }
    Ok(tokens)
}

fn ident_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
        i += 1;
    }
    i
}

/// Reads a `'...'` or `` `...` `` literal starting at `start` (the opening quote) and returns
/// its unescaped text and the offset after the closing quote.
fn lex_quoted(src: &str, start: usize, quote: u8) -> Result<(Cow<'_, str>, usize), ParseError> {
    let body = &src[start + 1..];
    // Without escapes the text is a slice of the source.
    let first_special = body.bytes().position(|b| b == quote || b == b'\\');
    if let Some(end) = first_special.filter(|&end| body.as_bytes()[end] == quote) {
        return Ok((Cow::Borrowed(&body[..end]), start + 1 + end + 1));
    }
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((off, ch)) = chars.next() {
        let pos = start + 1 + off;
        if ch as u32 == quote as u32 {
            return Ok((Cow::Owned(out), pos + 1));
        }
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let Some((_, esc)) = chars.next() else {
            break;
        };
        match esc {
            '\'' | '"' | '`' | '\\' | '/' => out.push(esc),
            'f' => out.push('\u{000C}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let mut code = 0u32;
                for _ in 0..4 {
                    let digit = chars
                        .next()
                        .and_then(|(_, h)| h.to_digit(16))
                        .ok_or(ParseError::InvalidEscape { pos })?;
                    code = code * 16 + digit;
                }
                out.push(char::from_u32(code).ok_or(ParseError::InvalidEscape { pos })?);
            }
            _ => return Err(ParseError::InvalidEscape { pos }),
        }
    }
    Err(ParseError::UnterminatedString { pos: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Token<'_>> {
        tokenize(src)
            .map(|v| v.into_iter().map(|s| s.token).collect())
            .unwrap_or_default()
    }

    #[test]
    fn lexes_operators_and_literals() {
        assert_eq!(
            kinds("a.b != 'x\\'y' | %resource[0] <= 1.5"),
            vec![
                Token::Ident {
                    name: "a".into(),
                    delimited: false
                },
                Token::Dot,
                Token::Ident {
                    name: "b".into(),
                    delimited: false
                },
                Token::NotEq,
                Token::Str("x'y".into()),
                Token::Pipe,
                Token::Constant("resource".into()),
                Token::LBracket,
                Token::Number("0"),
                Token::RBracket,
                Token::Le,
                Token::Number("1.5"),
            ]
        );
    }

    #[test]
    fn number_followed_by_call_keeps_the_dot() {
        assert_eq!(kinds("1.exists()")[..2], [Token::Number("1"), Token::Dot]);
    }

    #[test]
    fn reports_unterminated_string() {
        assert_eq!(
            tokenize("a = 'abc"),
            Err(ParseError::UnterminatedString { pos: 4 })
        );
    }

    #[test]
    fn unicode_escape() {
        assert_eq!(kinds("'\\u00e9'"), vec![Token::Str("é".into())]);
    }
}
