//! The key side of a filter parameter (`code[:modifier]`, chains `a:Type.b.c`, `_has:...`)
//! resolved against the registry, and the conditions its value turns into.

use super::value::{
    ReferenceContext, TokenModifier, date_test, number_test, quantity_test, reference_test,
    split_unescaped, string_test, token_test, unescape, uri_test,
};
use crate::definitions::Definitions;
use crate::index::parse_reference;
use crate::search::{Clause, Condition, SearchError, Test};
use crate::search_parameter::{SearchParamType, SearchParameter, SearchParameters};

/// Links of chains and `_has` one parameter may nest: each is a join in SQL, and real queries
/// use two or three.
const MAX_DEPTH: usize = 4;

/// Parameters FHIR defines that this server does not implement.
pub(crate) const UNSUPPORTED: &[&str] = &["_text", "_content", "_filter", "_query", "_list"];

/// Why a filter parameter was refused. Under `Prefer: handling=lenient` an `Unknown` parameter
/// is ignored; an `Invalid` one is always an error, since the client asked for something this
/// server understands and got it wrong.
#[derive(Debug)]
pub(crate) enum ParamError {
    Unknown(SearchError),
    Invalid(SearchError),
}

impl ParamError {
    pub(crate) fn into_search_error(self) -> SearchError {
        match self {
            ParamError::Unknown(e) | ParamError::Invalid(e) => e,
        }
    }
}

pub(crate) struct FilterContext<'a> {
    pub registry: &'a SearchParameters,
    /// Without a trailing slash.
    pub base_url: Option<&'a str>,
}

/// A resource type the search language can name: FHIR R4 or Medplum.
pub(crate) fn is_resource_type(t: &str) -> bool {
    Definitions::global().is_resource_type(t) || SearchParameters::global().is_resource_type(t)
}

/// The parameter `code` of `scope`, or, at system level without `_type` (`scope` None), the
/// parameter every resource type has (those defined on `Resource`).
pub(crate) fn lookup<'r>(
    registry: &'r SearchParameters,
    scope: Option<&str>,
    code: &str,
) -> Option<&'r SearchParameter> {
    match scope {
        Some(t) => registry.get(t, code),
        None => registry
            .all()
            .iter()
            .find(|p| p.code == code && p.base.iter().any(|b| b == "Resource"))
            .map(AsRef::as_ref),
    }
}

/// The clauses (ANDed) that `key=raw` adds to a search of `scope`. `raw` is non-empty.
pub(crate) fn filter_clauses(
    scope: Option<&str>,
    key: &str,
    raw: &str,
    ctx: &FilterContext<'_>,
) -> Result<Vec<Clause>, ParamError> {
    let parser = KeyParser { full_key: key, ctx };
    let and = parser.conditions(scope, key, raw, 0)?;
    Ok(and.into_iter().map(|any| Clause { any }).collect())
}

/// An AND of ORs of conditions.
type Conditions = Vec<Vec<Condition>>;

struct KeyParser<'a> {
    /// The key as the client wrote it, for messages.
    full_key: &'a str,
    ctx: &'a FilterContext<'a>,
}

impl KeyParser<'_> {
    fn unknown(&self, message: impl Into<String>) -> ParamError {
        ParamError::Unknown(SearchError::new(self.full_key, message))
    }

    fn invalid(&self, message: impl Into<String>) -> ParamError {
        ParamError::Invalid(SearchError::new(
            self.full_key,
            format!("Invalid value for {}: {}", self.full_key, message.into()),
        ))
    }

    fn malformed(&self, message: impl Into<String>) -> ParamError {
        ParamError::Invalid(SearchError::new(self.full_key, message))
    }

    fn conditions(
        &self,
        scope: Option<&str>,
        key: &str,
        raw: &str,
        depth: usize,
    ) -> Result<Conditions, ParamError> {
        if depth > MAX_DEPTH {
            return Err(self.malformed(format!(
                "{}: chains and _has nest at most {MAX_DEPTH} levels",
                self.full_key
            )));
        }
        if let Some(rest) = key.strip_prefix("_has:") {
            return self.has(scope, rest, raw, depth);
        }
        if key == "_has" {
            return Err(
                self.malformed("_has is written _has:Type:reference:parameter=value".to_string())
            );
        }
        if let Some((link, rest)) = key.split_once('.') {
            return self.chain(scope, link, rest, raw, depth);
        }
        let (code, modifier) = match key.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier)),
            None => (key, None),
        };
        self.leaf(scope, code, modifier, raw)
    }

    /// `_has:Source:reference:rest`: resources of `Source` that refer to this one through
    /// `reference` and satisfy `rest`.
    fn has(
        &self,
        scope: Option<&str>,
        rest: &str,
        raw: &str,
        depth: usize,
    ) -> Result<Conditions, ParamError> {
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(reference_code), Some(inner_key)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(self.malformed(format!(
                "{}: _has is written _has:Type:reference:parameter",
                self.full_key
            )));
        };
        if !is_resource_type(source) {
            return Err(self.unknown(format!(
                "{}: {source} is not a resource type",
                self.full_key
            )));
        }
        let Some(param) = self.ctx.registry.get(source, reference_code) else {
            return Err(self.unknown(format!(
                "{}: {reference_code} is not a search parameter of {source}",
                self.full_key
            )));
        };
        if param.kind != SearchParamType::Reference {
            return Err(self.malformed(format!(
                "{}: {source}.{reference_code} is not a reference parameter",
                self.full_key
            )));
        }
        if let Some(t) = scope
            && !param.target.is_empty()
            && !param.target.iter().any(|x| x == t)
        {
            return Err(self.malformed(format!(
                "{}: {source}.{reference_code} cannot refer to a {t}",
                self.full_key
            )));
        }
        let inner = self.conditions(Some(source), inner_key, raw, depth + 1)?;
        Ok(wrap(inner, |c| Condition::Has {
            source_type: source.to_string(),
            reference_code: reference_code.to_string(),
            inner: Box::new(c),
        }))
    }

    /// `link[:Type].rest`: this resource refers through `link` to a `Type` satisfying `rest`.
    fn chain(
        &self,
        scope: Option<&str>,
        link: &str,
        rest: &str,
        raw: &str,
        depth: usize,
    ) -> Result<Conditions, ParamError> {
        let (code, type_modifier) = match link.split_once(':') {
            Some((code, m)) => (code, Some(m)),
            None => (link, None),
        };
        let Some(param) = lookup(self.ctx.registry, scope, code) else {
            return Err(self.unknown(unknown_parameter_message(scope, code)));
        };
        if param.kind != SearchParamType::Reference {
            return Err(self.malformed(format!(
                "{}: cannot chain through {code}, a {} parameter (only reference parameters chain)",
                self.full_key,
                param.kind.as_str()
            )));
        }
        let target_type = match type_modifier {
            Some(t) => {
                if !is_resource_type(t) {
                    return Err(self.unknown(format!(
                        "{}: :{t} is not a resource type (a chain link takes only :Type)",
                        self.full_key
                    )));
                }
                if !param.target.is_empty() && !param.target.iter().any(|x| x == t) {
                    return Err(self.malformed(format!(
                        "{}: {t} is not a target of {code} (allowed: {})",
                        self.full_key,
                        param.target.join(", ")
                    )));
                }
                t.to_string()
            }
            None => match param.target.as_slice() {
                [only] => only.clone(),
                targets => {
                    return Err(self.malformed(format!(
                        "{}: {code} may refer to {}; say which with {code}:Type",
                        self.full_key,
                        if targets.is_empty() {
                            "any type".to_string()
                        } else {
                            targets.join(", ")
                        }
                    )));
                }
            },
        };
        let inner = self.conditions(Some(&target_type), rest, raw, depth + 1)?;
        Ok(wrap(inner, |c| Condition::Chain {
            reference_code: code.to_string(),
            target_type: target_type.clone(),
            inner: Box::new(c),
        }))
    }

    fn leaf(
        &self,
        scope: Option<&str>,
        code: &str,
        modifier: Option<&str>,
        raw: &str,
    ) -> Result<Conditions, ParamError> {
        if UNSUPPORTED.contains(&code) {
            return Err(self.unknown(format!("{code} is not supported by this server")));
        }
        let no_modifier = |what: &str| match modifier {
            None => Ok(()),
            Some(m) => Err(self.unknown(format!(
                "{}: modifier :{m} is not supported on {what}",
                self.full_key
            ))),
        };
        match code {
            "_id" => {
                no_modifier("_id")?;
                let ids = self.items(raw, |item| {
                    let id = unescape(item);
                    Ok(Condition::Id(id))
                })?;
                return Ok(vec![ids]);
            }
            "_lastUpdated" => {
                no_modifier("_lastUpdated")?;
                let tests = self.items(raw, |item| date_test(item).map(Condition::LastUpdated))?;
                return Ok(vec![tests]);
            }
            "_compartment" => {
                no_modifier("_compartment")?;
                let compartments = self.items(raw, |item| {
                    let value = unescape(item);
                    match parse_reference(&value) {
                        Some((t, id)) if !value.contains("://") => Ok(Condition::Compartment {
                            compartment_type: t.to_string(),
                            id: id.to_string(),
                        }),
                        _ => Err(format!("{value:?}: a compartment is named as Type/id")),
                    }
                })?;
                return Ok(vec![compartments]);
            }
            _ => {}
        }
        let Some(param) = lookup(self.ctx.registry, scope, code) else {
            return Err(self.unknown(unknown_parameter_message(scope, code)));
        };
        if modifier == Some("missing") {
            let missing = match raw {
                "true" => true,
                "false" => false,
                _ => return Err(self.invalid(":missing takes true or false")),
            };
            return Ok(vec![vec![Condition::Missing {
                code: code.to_string(),
                missing,
            }]]);
        }
        let param_condition = |test: Test| Condition::Param {
            code: code.to_string(),
            test,
        };
        let unknown_modifier = |m: &str| {
            self.unknown(format!(
                "{}: modifier :{m} is not supported on {code}, a {} parameter",
                self.full_key,
                param.kind.as_str()
            ))
        };
        let any = match (param.kind, modifier) {
            (SearchParamType::Special, _) => {
                return Err(self.unknown(format!("{code} is not supported by this server")));
            }
            (SearchParamType::String, None | Some("contains" | "exact")) => self
                .items(raw, |i| {
                    string_test(i, modifier).map(|t| param_condition(Test::String(t)))
                })?,
            (SearchParamType::Token, m) => {
                let kind = match m {
                    None => TokenModifier::Eq,
                    Some("not") => TokenModifier::Not,
                    Some("text") => TokenModifier::Text,
                    Some("of-type") if is_identifier_parameter(param) => TokenModifier::OfType,
                    Some(m) => return Err(unknown_modifier(m)),
                };
                let tests = self.items(raw, |i| {
                    token_test(i, kind).map(|t| param_condition(Test::Token(t)))
                })?;
                if kind == TokenModifier::Not {
                    // `:not=a,b` means neither a nor b, as clients mean it (and as HAPI and
                    // Medplum read it), not "not a, or not b", which almost everything matches.
                    return Ok(tests.into_iter().map(|c| vec![c]).collect());
                }
                tests
            }
            (SearchParamType::Reference, m) => {
                let modifier_type = match m {
                    None => None,
                    Some(t) if is_resource_type(t) => {
                        if !param.target.is_empty() && !param.target.iter().any(|x| x == t) {
                            return Err(self.malformed(format!(
                                "{}: {t} is not a target of {code} (allowed: {})",
                                self.full_key,
                                param.target.join(", ")
                            )));
                        }
                        Some(t)
                    }
                    Some(m) => return Err(unknown_modifier(m)),
                };
                let rc = ReferenceContext {
                    targets: &param.target,
                    modifier_type,
                    base_url: self.ctx.base_url,
                    is_resource_type: &is_resource_type,
                };
                self.items(raw, |i| {
                    reference_test(i, &rc).map(|t| param_condition(Test::Reference(t)))
                })?
            }
            (SearchParamType::Date, None) => self.items(raw, |i| {
                date_test(i).map(|t| param_condition(Test::Date(t)))
            })?,
            (SearchParamType::Number, None) => self.items(raw, |i| {
                number_test(i).map(|t| param_condition(Test::Number(t)))
            })?,
            (SearchParamType::Quantity, None) => self.items(raw, |i| {
                quantity_test(i).map(|t| param_condition(Test::Quantity(t)))
            })?,
            (SearchParamType::Uri, None | Some("below" | "above")) => self.items(raw, |i| {
                uri_test(i, modifier).map(|t| param_condition(Test::Uri(t)))
            })?,
            (SearchParamType::Composite, None) => self.items(raw, |i| {
                self.composite(param, i)
                    .map(|t| param_condition(Test::Composite(t)))
            })?,
            (_, Some(m)) => return Err(unknown_modifier(m)),
        };
        Ok(vec![any])
    }

    /// Components separated by unescaped `$`, each parsed as its component's type.
    fn composite(&self, param: &SearchParameter, raw: &str) -> Result<Vec<Test>, String> {
        let parts = split_unescaped(raw, '$');
        if parts.len() != param.components.len() {
            let codes: Vec<&str> = param.components.iter().map(|c| c.code.as_str()).collect();
            return Err(format!(
                "{} takes {} components separated by '$' ({}), got {}",
                param.code,
                codes.len(),
                codes.join("$"),
                parts.len()
            ));
        }
        param
            .components
            .iter()
            .zip(parts)
            .map(|(component, part)| {
                if part.is_empty() {
                    return Err(format!("the {} component is empty", component.code));
                }
                Ok(match component.kind {
                    SearchParamType::String => Test::String(string_test(part, None)?),
                    SearchParamType::Token => Test::Token(token_test(part, TokenModifier::Eq)?),
                    SearchParamType::Reference => Test::Reference(reference_test(
                        part,
                        &ReferenceContext {
                            targets: &[],
                            modifier_type: None,
                            base_url: self.ctx.base_url,
                            is_resource_type: &is_resource_type,
                        },
                    )?),
                    SearchParamType::Date => Test::Date(date_test(part)?),
                    SearchParamType::Number => Test::Number(number_test(part)?),
                    SearchParamType::Quantity => Test::Quantity(quantity_test(part)?),
                    SearchParamType::Uri => Test::Uri(uri_test(part, None)?),
                    SearchParamType::Composite | SearchParamType::Special => {
                        return Err(format!(
                            "component {} has an unsupported type",
                            component.code
                        ));
                    }
                })
            })
            .collect()
    }

    /// The comma-separated alternatives of `raw`, each parsed by `parse`.
    fn items(
        &self,
        raw: &str,
        parse: impl Fn(&str) -> Result<Condition, String>,
    ) -> Result<Vec<Condition>, ParamError> {
        split_unescaped(raw, ',')
            .into_iter()
            .map(|item| {
                if item.is_empty() {
                    return Err(self.invalid("empty value in a comma-separated list"));
                }
                parse(item).map_err(|m| self.invalid(m))
            })
            .collect()
    }
}

fn unknown_parameter_message(scope: Option<&str>, code: &str) -> String {
    match scope {
        Some(t) => format!("Unknown search parameter {code} for {t}"),
        None => format!(
            "Unknown search parameter {code} for a search across all types (give _type to use \
             the parameters of a type)"
        ),
    }
}

/// `:of-type` searches `Identifier.type`, so it only applies to parameters on identifiers.
fn is_identifier_parameter(param: &SearchParameter) -> bool {
    param.code == "identifier"
        || param
            .expression
            .as_ref()
            .is_some_and(|e| e.source().contains("identifier"))
}

fn wrap(inner: Conditions, f: impl Fn(Condition) -> Condition) -> Conditions {
    inner
        .into_iter()
        .map(|any| any.into_iter().map(&f).collect())
        .collect()
}
