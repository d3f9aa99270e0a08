//! The search language (`oxmed_fhir::search`) as predicates over `resources` and the index
//! tables: a small tree ([`Pred`]) that `render` turns into SQL, choosing for each set of rows
//! whether it drives the statement (`rid IN (...)`) or is checked row by row (`EXISTS`).
//!
//! Each comparison means exactly what `oxmed_fhir::search::matching` decides in memory for one
//! stored value (its predicates are the reference); a condition holds if some index row of the
//! parameter satisfies it, and a negation (`:not`, `ne`) holds if none satisfies its positive
//! form. Every set is scoped by the project key, so nothing of another project can take part,
//! whatever the nesting (chains, `_has`, compartments).

use oxmed_fhir::index::{ACCOUNT_CODE, normalize_string, parse_reference};
use oxmed_fhir::search::matching::{
    date_ap_tolerance, is_negation, patient_compartment_params, positive_form,
};
use oxmed_fhir::search::{
    Clause, Condition, DateTest, NumberTest, Prefix, QuantityTest, ReferenceTest, Restriction,
    StringTest, Test, TokenKind, TokenTest, UriTest,
};
use oxmed_fhir::search_parameter::{SearchParamType, SearchParameter, SearchParameters};

use super::render::CHECK_FILTER;
use crate::StoreError;
use crate::projects::ProjectFilter;
use crate::schema::{self, Dialect, INDEX_TABLES};
use crate::sql::SqlValue;
use crate::token_signature;

/// Statement parameters, numbered as they are added; fragments may be built in any order since
/// placeholders are numbered (`?3`, `$3`).
pub(crate) struct Params {
    dialect: Dialect,
    pub(crate) values: Vec<SqlValue>,
}

impl Params {
    pub(crate) fn new(dialect: Dialect) -> Params {
        Params {
            dialect,
            values: Vec::new(),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn push(&mut self, value: SqlValue) -> String {
        self.values.push(value);
        self.dialect.param(self.values.len())
    }

    pub(crate) fn text(&mut self, s: &str) -> String {
        self.push(SqlValue::Text(s.to_owned()))
    }

    pub(crate) fn int(&mut self, i: i64) -> String {
        self.push(SqlValue::Int(i))
    }

    pub(crate) fn real(&mut self, f: f64) -> String {
        self.push(SqlValue::Real(f))
    }

    /// `(p1, p2, ...)` for an `IN` list of texts.
    fn texts<'s>(&mut self, items: impl IntoIterator<Item = &'s str>) -> String {
        let placeholders: Vec<String> = items.into_iter().map(|s| self.text(s)).collect();
        format!("({})", placeholders.join(", "))
    }
}

/// The resource types a predicate applies to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scope {
    One(String),
    Many(Vec<String>),
    /// A system-level search of every type.
    All,
}

impl Scope {
    pub(crate) fn of(types: &[String]) -> Scope {
        match types {
            [] => Scope::All,
            [one] => Scope::One(one.clone()),
            many => Scope::Many(many.to_vec()),
        }
    }

    /// `col` restricted to the scope's types, or `None` for every type.
    pub(crate) fn cond(&self, col: &str, params: &mut Params) -> Option<String> {
        match self {
            Scope::One(t) => Some(format!("{col} = {}", params.text(t))),
            Scope::Many(ts) => Some(format!(
                "{col} IN {}",
                params.texts(ts.iter().map(String::as_str))
            )),
            Scope::All => None,
        }
    }

    /// The definition of a parameter for the scope: of the first type that has it. Types of one
    /// search share the parameters they are searched by (the parser checks it), and at system
    /// level only the `Resource` ones, which every type has.
    pub(crate) fn param(&self, code: &str) -> Option<&'static SearchParameter> {
        let registry = SearchParameters::global();
        match self {
            Scope::One(t) => registry.get(t, code),
            Scope::Many(ts) => ts.iter().find_map(|t| registry.get(t, code)),
            Scope::All => registry
                .resource_types()
                .find_map(|t| registry.get(t, code)),
        }
    }
}

/// A predicate on one row of `resources`, whose alias is given when it is rendered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pred {
    Const(bool),
    /// SQL on the row; `{a}` stands for its alias. `rank` guesses how selective it is.
    Row {
        sql: String,
        rank: u8,
    },
    /// The row is (or, negated, is not) among a set of rows.
    Set {
        set: Set,
        negated: bool,
    },
    And(Vec<Pred>),
    Or(Vec<Pred>),
}

/// A set of rows of `resources`, by key (`rid`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Set {
    /// The rows that have an index row satisfying `cond` (SQL on the index row, alias `{i}`).
    /// `point`: `cond` fixes every column of the lookup key, so a check of one resource is a
    /// single seek of the primary index rather than a walk of the resource's rows. `ordered`:
    /// it fixes each with one equality (one type, one value), so the index rows it selects
    /// come out in `rid` order.
    Index {
        table: &'static str,
        cond: String,
        point: bool,
        ordered: bool,
        rank: u8,
        /// For a token row of one code: the placeholder of the bits (`token_signature::mask`)
        /// that the token signature of every resource with such a row holds.
        signature: Option<String>,
    },
    /// The rows with a `reference_idx` row satisfying `cond` (alias `{i}`) whose target is a
    /// row satisfying `target`.
    Chain {
        cond: String,
        target: Box<Pred>,
        rank: u8,
    },
    /// The rows that are the target of a `reference_idx` row satisfying `cond` (alias `{i}`)
    /// of a source row satisfying `source`.
    Has {
        cond: String,
        source: Box<Pred>,
        rank: u8,
    },
    /// The rows satisfying a row predicate (so that it can join a union of sets).
    Rows(Box<Pred>),
    Union(Vec<Set>),
}

/// How selective a predicate is guessed to be, for SQLite's choice of the set that drives a
/// statement (PostgreSQL's planner chooses from statistics). Below `DRIVER_RANK` a set is not
/// worth reading whole: scanning the type's rows in order and checking each is no worse.
pub(crate) const DRIVER_RANK: u8 = 20;
/// `_id`: a unique lookup, better than any set.
pub(crate) const ID_RANK: u8 = 100;

impl Set {
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Set::Index { rank, .. } | Set::Chain { rank, .. } | Set::Has { rank, .. } => *rank,
            Set::Rows(pred) => pred.rank(),
            Set::Union(sets) => sets.iter().map(Set::rank).min().unwrap_or(0),
        }
    }

    /// The set with the placeholder of its token signature mask (see `Set::Index`).
    fn with_signature(mut self, mask: Option<String>) -> Set {
        if let Set::Index { signature, .. } = &mut self {
            *signature = mask;
        }
        self
    }

    /// Whether a check of this set needs nothing of the row but its `rid`.
    pub(crate) fn keyed_by_rid(&self) -> bool {
        match self {
            Set::Index { .. } | Set::Chain { .. } => true,
            Set::Has { .. } | Set::Rows(_) => false,
            Set::Union(sets) => sets.iter().all(Set::keyed_by_rid),
        }
    }
}

impl Pred {
    /// The best guess of selectivity among the conjuncts, the worst among alternatives.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Pred::Const(_) => 0,
            Pred::Row { rank, .. } => *rank,
            Pred::Set { set, negated } => {
                if *negated {
                    0
                } else {
                    set.rank()
                }
            }
            Pred::And(all) => all.iter().map(Pred::rank).max().unwrap_or(0),
            Pred::Or(any) => any.iter().map(Pred::rank).min().unwrap_or(0),
        }
    }
}

/// AND, simplified: constants folded, nested ANDs flattened.
pub(crate) fn and(preds: Vec<Pred>) -> Pred {
    let mut all = Vec::with_capacity(preds.len());
    for p in preds {
        match p {
            Pred::Const(true) => {}
            Pred::Const(false) => return Pred::Const(false),
            Pred::And(inner) => all.extend(inner),
            p => all.push(p),
        }
    }
    match all.len() {
        0 => Pred::Const(true),
        1 => all.pop().unwrap_or(Pred::Const(true)),
        _ => Pred::And(all),
    }
}

/// OR, simplified; alternatives that are all positive sets or row predicates become one set
/// (a union), which can drive a statement where an OR of subqueries cannot.
pub(crate) fn or(preds: Vec<Pred>) -> Pred {
    let mut any = Vec::with_capacity(preds.len());
    for p in preds {
        match p {
            Pred::Const(false) => {}
            Pred::Const(true) => return Pred::Const(true),
            Pred::Or(inner) => any.extend(inner),
            p => any.push(p),
        }
    }
    if any.len() <= 1 {
        return any.pop().unwrap_or(Pred::Const(false));
    }
    let has_set = any
        .iter()
        .any(|p| matches!(p, Pred::Set { negated: false, .. }));
    let unionable = any
        .iter()
        .all(|p| matches!(p, Pred::Set { negated: false, .. } | Pred::Row { .. }));
    if has_set && unionable {
        let sets = any
            .into_iter()
            .map(|p| match p {
                Pred::Set { set, .. } => set,
                row => Set::Rows(Box::new(row)),
            })
            .collect();
        return Pred::Set {
            set: Set::Union(sets),
            negated: false,
        };
    }
    Pred::Or(any)
}

/// Compiles conditions for one statement.
pub(crate) struct Compiler<'a> {
    pub(crate) params: Params,
    /// The comparison that keeps a project key column to the scope: `= ?1`, `IN (?1, ?2)`, or
    /// the key of any project.
    project: String,
    /// Projects of the scope visible only for some types (linked projects that export some).
    limited: Vec<(i64, Vec<String>)>,
    /// The scope is every project.
    every_project: bool,
    restriction: Option<&'a Restriction>,
    /// The instant `ap` on dates measures its tolerance from.
    now: i64,
}

/// The conditions of an index row, AND-ed; `None` when no value can ever satisfy the test.
type Conds = Option<Vec<String>>;

/// How a test's conditions constrain the lookup key of its index table (see `Set::Index`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    /// Some key column is free or a range.
    Partial,
    /// Every key column is fixed, some by a list of values.
    Listed,
    /// Every key column is fixed by one equality.
    Equal,
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(
        dialect: Dialect,
        projects: &ProjectFilter,
        restriction: Option<&'a Restriction>,
    ) -> Compiler<'a> {
        let mut params = Params::new(dialect);
        // Every project: still a lookup by each key of the small key table, so the project
        // column leads every index probe (a skip-scan that PostgreSQL 15 cannot do by itself).
        let project = match projects.keys.as_deref() {
            Some([key]) => format!("= {}", params.int(*key)),
            Some(keys) => {
                let keys: Vec<String> = keys.iter().map(|k| params.int(*k)).collect();
                format!("IN ({})", keys.join(", "))
            }
            None => "IN (SELECT key FROM project_keys)".to_owned(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        Compiler {
            params,
            project,
            limited: projects.limited.clone(),
            every_project: projects.keys.is_none(),
            restriction,
            now,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.params.dialect
    }

    /// The comparison of a project key column with the scope (`= ?1`).
    pub(crate) fn project(&self) -> &str {
        &self.project
    }

    /// Live rows of the scope in the project.
    pub(crate) fn base(&mut self, scope: &Scope) -> Pred {
        // Every project: a row needs no test of its project (its index rows were sought by it).
        let mut sql = match self.every_project {
            true => "NOT {a}.deleted".to_owned(),
            false => format!("{{a}}.project_key {} AND NOT {{a}}.deleted", self.project),
        };
        if let Some(types) = scope.cond("{a}.resource_type", &mut self.params) {
            sql.push_str(" AND ");
            sql.push_str(&types);
        }
        // A linked project that exports some types only: its other rows are not there. Index
        // probes keep to the projects' keys alone; every row that takes part passes here.
        for (key, types) in &self.limited {
            if let Scope::One(t) = scope
                && types.contains(t)
            {
                continue;
            }
            let key = self.params.int(*key);
            let types: Vec<String> = types.iter().map(|t| self.params.text(t)).collect();
            sql.push_str(&format!(
                " AND ({{a}}.project_key <> {key} OR {{a}}.resource_type IN ({}))",
                types.join(", ")
            ));
        }
        Pred::Row { sql, rank: 0 }
    }

    /// What a search selects: live rows of the scope in the project that the restriction lets
    /// the caller see and that satisfy every clause.
    pub(crate) fn filter(&mut self, scope: &Scope, clauses: &[Clause]) -> Result<Pred, StoreError> {
        let mut all = vec![self.base(scope)];
        for clause in clauses {
            all.push(self.clause(scope, clause, true)?);
        }
        // After the caller's own conditions: of sets guessed equally selective the first
        // drives, and a policy's view (the compartments of a hundred Patients) is usually far
        // wider than what a search asks for (one Patient's Observations of one code).
        if !self.implies_restriction(scope, clauses) {
            all.push(self.restriction(scope)?);
        }
        Ok(and(all))
    }

    /// Whether every row meeting the caller's `clauses` is visible under the restriction
    /// anyway, so that checking it would only cost: some alternative of the type has each of its
    /// clauses implied by one of the caller's. The common case is a patient's own data under a
    /// compartment policy (`Observation?subject=Patient/X` with `Patient/X` in the policy's
    /// list), where the check is one more index probe and a list lookup for every row.
    fn implies_restriction(&self, scope: &Scope, clauses: &[Clause]) -> bool {
        let (Some(restriction), Scope::One(t)) = (self.restriction, scope) else {
            return false;
        };
        let Some(alternatives) = restriction.types.get(t) else {
            return false;
        };
        alternatives.iter().any(|alternative| {
            alternative.iter().all(|allowed| {
                clauses.iter().any(|clause| {
                    !clause.any.is_empty()
                        && clause
                            .any
                            .iter()
                            .all(|c| allowed.any.iter().any(|a| implies(t, c, a)))
                })
            })
        })
    }

    /// The restriction for rows of `scope`: `true` without one, `false` for a type it does not
    /// list. Its own criteria are compiled without it (`restricted` false): they are the
    /// policy's definition of what is visible, not a caller's search, and applying it inside
    /// them could recurse without end.
    pub(crate) fn restriction(&mut self, scope: &Scope) -> Result<Pred, StoreError> {
        let Some(restriction) = self.restriction else {
            return Ok(Pred::Const(true));
        };
        let types: Vec<String> = match scope {
            Scope::One(t) => return self.type_restriction(restriction, t),
            Scope::Many(ts) => ts.clone(),
            Scope::All => {
                let mut ts: Vec<String> = restriction.types.keys().cloned().collect();
                ts.sort();
                ts
            }
        };
        let mut any = Vec::with_capacity(types.len());
        for t in &types {
            let is_type = Pred::Row {
                sql: format!("{{a}}.resource_type = {}", self.params.text(t)),
                rank: 0,
            };
            let allowed = self.type_restriction(restriction, t)?;
            any.push(and(vec![is_type, allowed]));
        }
        Ok(or(any))
    }

    fn type_restriction(
        &mut self,
        restriction: &Restriction,
        resource_type: &str,
    ) -> Result<Pred, StoreError> {
        let Some(alternatives) = restriction.types.get(resource_type) else {
            return Ok(Pred::Const(false));
        };
        let scope = Scope::One(resource_type.to_owned());
        let mut any = Vec::with_capacity(alternatives.len());
        for clauses in alternatives {
            let mut all = Vec::with_capacity(clauses.len());
            for clause in clauses {
                all.push(self.clause(&scope, clause, false)?);
            }
            any.push(and(all));
        }
        Ok(or(any))
    }

    /// `restricted`: whether rows reached through chains and `_has` must be visible under the
    /// restriction (a caller's conditions) or not (the restriction's own criteria).
    pub(crate) fn clause(
        &mut self,
        scope: &Scope,
        clause: &Clause,
        restricted: bool,
    ) -> Result<Pred, StoreError> {
        // Several compartments of one type (a policy's `_compartment=Patient/a,Patient/b,...`):
        // one set with a list of ids, one indexed probe per row checked, rather than one per id.
        if clause.any.len() > 1 {
            let mut ids = Vec::with_capacity(clause.any.len());
            let mut of_type = None;
            for c in &clause.any {
                match c {
                    Condition::Compartment {
                        compartment_type,
                        id,
                    } if of_type.is_none_or(|t| t == compartment_type) => {
                        of_type = Some(compartment_type);
                        ids.push(id.as_str());
                    }
                    _ => break,
                }
            }
            if let Some(t) = of_type
                && ids.len() == clause.any.len()
            {
                return self.compartment(scope, t, &ids);
            }
        }
        let mut any = Vec::with_capacity(clause.any.len());
        for condition in &clause.any {
            any.push(self.condition(scope, condition, restricted)?);
        }
        Ok(or(any))
    }

    fn condition(
        &mut self,
        scope: &Scope,
        condition: &Condition,
        restricted: bool,
    ) -> Result<Pred, StoreError> {
        Ok(match condition {
            Condition::Id(id) => {
                let id = format!("{{a}}.id = {}", self.params.text(id));
                Pred::Row {
                    sql: self.typed(scope, id),
                    rank: ID_RANK,
                }
            }
            Condition::LastUpdated(test) => {
                let sql = self.last_updated(test);
                Pred::Row {
                    sql: self.typed(scope, sql),
                    rank: 15,
                }
            }
            Condition::Param { code, test } => self.param(scope, code, test)?,
            Condition::Missing { code, missing } => self.missing(scope, code, *missing),
            Condition::Chain {
                reference_code,
                target_type,
                inner,
            } => self.chain(scope, reference_code, target_type, inner, restricted)?,
            Condition::Has {
                source_type,
                reference_code,
                inner,
            } => self.has(scope, source_type, reference_code, inner, restricted)?,
            Condition::Compartment {
                compartment_type,
                id,
            } => self.compartment(scope, compartment_type, &[id.as_str()])?,
        })
    }

    /// A row predicate led by the scope's types: redundant on the searched row, but what lets
    /// the same predicate, as a member of a union (`Set::Rows`), use the `(resource_type, id)`
    /// and `(project_key, resource_type, last_updated)` indexes.
    fn typed(&mut self, scope: &Scope, sql: String) -> String {
        match scope.cond("{a}.resource_type", &mut self.params) {
            Some(types) => format!("{types} AND {sql}"),
            None => sql,
        }
    }

    /// `{i}.project = P AND {i}.resource_type ... AND {i}.code = C`.
    fn index_base(&mut self, scope: &Scope, code: &str) -> String {
        let mut sql = format!("{{i}}.project {}", self.project);
        if let Some(types) = scope.cond("{i}.resource_type", &mut self.params) {
            sql.push_str(" AND ");
            sql.push_str(&types);
        }
        sql.push_str(&format!(" AND {{i}}.code = {}", self.params.text(code)));
        sql
    }

    /// `key`: how the conditions constrain the table's lookup key.
    fn index_set(
        &mut self,
        scope: &Scope,
        table: usize,
        code: &str,
        conds: Vec<String>,
        key: Key,
        rank: u8,
    ) -> Set {
        let mut cond = self.index_base(scope, code);
        for c in conds {
            cond.push_str(" AND ");
            cond.push_str(&c);
        }
        Set::Index {
            table: INDEX_TABLES[table].name,
            cond,
            point: key != Key::Partial,
            ordered: key == Key::Equal && matches!(scope, Scope::One(_)),
            rank,
            signature: None,
        }
    }

    fn param(&mut self, scope: &Scope, code: &str, test: &Test) -> Result<Pred, StoreError> {
        let negated = is_negation(test);
        let positive;
        let test = if negated {
            positive = positive_form(test);
            &positive
        } else {
            test
        };
        let compiled = match test {
            Test::String(t) => {
                let (key, rank) = match t {
                    StringTest::StartsWith(s) => {
                        (Key::Partial, 24 + (s.chars().count().min(10) as u8) * 3)
                    }
                    StringTest::Contains(_) => (Key::Partial, 5),
                    StringTest::Exact(_) => (Key::Equal, 80),
                };
                self.string(t, "{i}.normalized", "{i}.exact")
                    .map(|c| (schema::STRING, c, key, rank))
            }
            Test::Token(t) => {
                let (key, rank) = match &t.kind {
                    TokenKind::Eq | TokenKind::Not => match (&t.system, &t.code) {
                        (Some(_), Some(_)) => (Key::Equal, 85),
                        (None, Some(_)) => (Key::Partial, 80),
                        _ => (Key::Partial, 15),
                    },
                    TokenKind::Text => (Key::Partial, 10),
                    TokenKind::OfType { .. } => (Key::Partial, 80),
                };
                self.token(
                    t,
                    "{i}.value",
                    "{i}.system",
                    "{i}.text",
                    Some(("{i}.type_system", "{i}.type_code")),
                )?
                .map(|c| (schema::TOKEN, c, key, rank))
            }
            Test::Reference(t) => {
                let key = match t {
                    ReferenceTest::Local {
                        target_type: Some(_),
                        ..
                    } => Key::Equal,
                    ReferenceTest::Local { .. } => Key::Partial,
                    ReferenceTest::Url(_) => Key::Listed,
                };
                self.reference(t, "{i}.target_id", "{i}.target_type", "{i}.reference")
                    .map(|c| (schema::REFERENCE, c, key, 90))
            }
            Test::Date(t) => self
                .date(t, "{i}.start_us", "{i}.end_us")
                .map(|c| (schema::DATE, c, Key::Partial, 15)),
            Test::Number(t) => {
                let rank = if t.prefix == Prefix::Eq { 40 } else { 15 };
                self.number(t, "{i}.value")
                    .map(|c| (schema::NUMBER, c, Key::Partial, rank))
            }
            Test::Quantity(t) => {
                let rank = match (&t.code, t.number.prefix) {
                    (Some(_), Prefix::Eq) => 50,
                    _ => 15,
                };
                self.quantity(t, "{i}.value", "{i}.system", "{i}.unit_code", "{i}.unit")
                    .map(|c| (schema::QUANTITY, c, Key::Partial, rank))
            }
            Test::Uri(t) => {
                let (key, rank) = match t {
                    UriTest::Eq(_) => (Key::Equal, 80),
                    UriTest::Above(_) => (Key::Listed, 70),
                    UriTest::Below(_) => (Key::Partial, 30),
                };
                self.uri(t, "{i}.value")
                    .map(|c| (schema::URI, c, key, rank))
            }
            Test::Composite(tests) => self
                .composite(scope, code, tests)?
                .map(|c| (schema::COMPOSITE, c, Key::Partial, 60)),
        };
        // Every row of the set has the value `c` in its `value` column, compared byte for byte.
        let signature = match test {
            Test::Token(TokenTest {
                kind: TokenKind::Eq | TokenKind::Not,
                code: Some(c),
                ..
            }) if !c.is_empty() => Some(self.params.int(token_signature::mask(code, c))),
            _ => None,
        };
        Ok(match compiled {
            // No stored value can satisfy the positive test: a negation always holds.
            None => Pred::Const(negated),
            Some((table, conds, key, rank)) => Pred::Set {
                set: self
                    .index_set(scope, table, code, conds, key, rank)
                    .with_signature(signature),
                negated,
            },
        })
    }

    fn missing(&mut self, scope: &Scope, code: &str, missing: bool) -> Pred {
        if matches!(code, "_id" | "_lastUpdated") {
            // Every resource row has both.
            return Pred::Const(!missing);
        }
        let table = match scope.param(code).map(|p| p.kind) {
            Some(SearchParamType::String) => schema::STRING,
            Some(SearchParamType::Token) => schema::TOKEN,
            Some(SearchParamType::Reference) => schema::REFERENCE,
            Some(SearchParamType::Date) => schema::DATE,
            Some(SearchParamType::Number) => schema::NUMBER,
            Some(SearchParamType::Quantity) => schema::QUANTITY,
            Some(SearchParamType::Uri) => schema::URI,
            Some(SearchParamType::Composite) => schema::COMPOSITE,
            // Nothing is ever indexed for these: every resource misses them.
            Some(SearchParamType::Special) | None => return Pred::Const(missing),
        };
        Pred::Set {
            set: self.index_set(scope, table, code, Vec::new(), Key::Partial, 5),
            negated: missing,
        }
    }

    /// What a resource of `resource_type` reached through a chain or `_has` must satisfy: be of
    /// the project and live, be visible under the restriction, and meet `inner`.
    fn related(
        &mut self,
        resource_type: &str,
        inner: &Condition,
        restricted: bool,
    ) -> Result<Pred, StoreError> {
        let scope = Scope::One(resource_type.to_owned());
        let mut preds = vec![self.base(&scope)];
        if restricted {
            preds.push(self.restriction(&scope)?);
        }
        preds.push(self.condition(&scope, inner, restricted)?);
        Ok(and(preds))
    }

    fn chain(
        &mut self,
        scope: &Scope,
        reference_code: &str,
        target_type: &str,
        inner: &Condition,
        restricted: bool,
    ) -> Result<Pred, StoreError> {
        let target = self.related(target_type, inner, restricted)?;
        if target == Pred::Const(false) {
            return Ok(target);
        }
        let mut cond = self.index_base(scope, reference_code);
        cond.push_str(&format!(
            " AND {{i}}.target_type = {}",
            self.params.text(target_type)
        ));
        let rank = target.rank().saturating_sub(10);
        Ok(Pred::Set {
            set: Set::Chain {
                cond,
                target: Box::new(target),
                rank,
            },
            negated: false,
        })
    }

    fn has(
        &mut self,
        scope: &Scope,
        source_type: &str,
        reference_code: &str,
        inner: &Condition,
        restricted: bool,
    ) -> Result<Pred, StoreError> {
        let source_scope = Scope::One(source_type.to_owned());
        let source = self.related(source_type, inner, restricted)?;
        if source == Pred::Const(false) {
            return Ok(source);
        }
        let mut cond = self.index_base(&source_scope, reference_code);
        if let Some(types) = scope.cond("{i}.target_type", &mut self.params) {
            cond.push_str(" AND ");
            cond.push_str(&types);
        }
        let rank = source.rank().saturating_sub(10);
        Ok(Pred::Set {
            set: Set::Has {
                cond,
                source: Box::new(source),
                rank,
            },
            negated: false,
        })
    }

    /// The compartment `compartment_type/id` for each id: resources with it among their
    /// accounts (`meta.accounts`, indexed as `ACCOUNT_CODE`), and for the Patient compartment
    /// the Patient itself and the resources whose compartment parameters
    /// (`patient_compartment_params`) refer to it.
    fn compartment(
        &mut self,
        scope: &Scope,
        compartment_type: &str,
        ids: &[&str],
    ) -> Result<Pred, StoreError> {
        let patient = compartment_type == "Patient";
        let types: Vec<String> = match scope {
            Scope::One(t) => vec![t.clone()],
            Scope::Many(ts) => ts.clone(),
            // Any resource can belong to an account.
            Scope::All => {
                let mut ts: Vec<String> = SearchParameters::global()
                    .resource_types()
                    .map(str::to_owned)
                    .collect();
                ts.sort();
                ts
            }
        };
        let mut any = Vec::new();
        let id_test = match ids {
            [one] => format!("= {}", self.params.text(one)),
            many => format!("IN {}", self.params.texts(many.iter().copied())),
        };
        // A list of ids is several lookups: as a driver, less selective than one.
        let rank = if ids.len() == 1 { 90 } else { 60 };
        if patient && types.iter().any(|t| t == "Patient") {
            let sql = format!("{{a}}.resource_type = 'Patient' AND {{a}}.id {id_test}");
            let rank = if ids.len() == 1 { ID_RANK } else { rank };
            any.push(Pred::Row { sql, rank });
        }
        // One set per group of types with the same codes, so that each is one indexed lookup;
        // accounts are reference rows like the compartment parameters, in the same set.
        let mut groups: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
        for t in &types {
            let mut codes: Vec<&str> = match patient {
                true => patient_compartment_params(t)
                    .iter()
                    .map(String::as_str)
                    .collect(),
                false => Vec::new(),
            };
            codes.push(ACCOUNT_CODE);
            match groups.iter_mut().find(|(c, _)| *c == codes) {
                Some((_, ts)) => ts.push(t),
                None => groups.push((codes, vec![t])),
            }
        }
        // A type name in the statement's text, not a parameter: PostgreSQL's generic plan for a
        // policy's compartment list then knows which target type it probes (as a parameter the
        // same search measured about a third slower). Anything but a plain name is a parameter.
        let target_type = if compartment_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            format!("'{compartment_type}'")
        } else {
            self.params.text(compartment_type)
        };
        for (codes, group) in groups {
            let types = self.params.texts(group);
            let codes = self.params.texts(codes);
            // Several ids: filtered, not sought, when checked (see `render::CHECK_FILTER`).
            let marker = if ids.len() > 1 { CHECK_FILTER } else { "" };
            let cond = format!(
                "{{i}}.project {} AND {{i}}.resource_type IN {types} AND {{i}}.code IN {codes} AND {marker}{{i}}.target_id {id_test} AND {{i}}.target_type = {target_type}",
                self.project,
            );
            any.push(Pred::Set {
                set: Set::Index {
                    table: INDEX_TABLES[schema::REFERENCE].name,
                    cond,
                    point: ids.len() == 1,
                    ordered: false,
                    rank,
                    signature: None,
                },
                negated: false,
            });
        }
        Ok(or(any))
    }

    /// `_lastUpdated`: the point `[t, t]` under the date prefixes, folded to comparisons of the
    /// one column so that its index serves them.
    fn last_updated(&mut self, test: &DateTest) -> String {
        let col = "{a}.last_updated";
        let (s2, e2) = (test.start, test.end);
        match test.prefix {
            Prefix::Eq | Prefix::Ne => {
                let eq = format!(
                    "{col} >= {} AND {col} <= {}",
                    self.params.int(s2),
                    self.params.int(e2)
                );
                if test.prefix == Prefix::Ne {
                    format!("NOT ({eq})")
                } else {
                    eq
                }
            }
            Prefix::Gt | Prefix::Sa => format!("{col} > {}", self.params.int(e2)),
            Prefix::Lt | Prefix::Eb => format!("{col} < {}", self.params.int(s2)),
            // t > e2 || (s2 <= t && t <= e2)  ==  t > e2 || t >= s2
            Prefix::Ge => {
                let bound = if e2 == i64::MAX { s2 } else { s2.min(e2 + 1) };
                format!("{col} >= {}", self.params.int(bound))
            }
            // t < s2 || (s2 <= t && t <= e2)  ==  t < s2 || t <= e2
            Prefix::Le => {
                let bound = if s2 == i64::MIN { e2 } else { e2.max(s2 - 1) };
                format!("{col} <= {}", self.params.int(bound))
            }
            Prefix::Ap => {
                let (lo, hi) = self.ap_bounds(test);
                format!(
                    "{col} <= {} AND {col} >= {}",
                    self.params.int(hi),
                    self.params.int(lo)
                )
            }
        }
    }

    /// `[s2 - t, e2 + t]`, saturated: a bound beyond the i64 range holds for every stored value.
    fn ap_bounds(&self, test: &DateTest) -> (i64, i64) {
        let t = date_ap_tolerance((test.start, test.end), self.now);
        (test.start.saturating_sub(t), test.end.saturating_add(t))
    }

    // -----------------------------------------------------------------------------------------
    // Comparisons of one stored value, on given columns (an index table's or a composite slot's).

    fn string(&mut self, test: &StringTest, normalized: &str, exact: &str) -> Conds {
        Some(match test {
            StringTest::StartsWith(s) => self.prefix(normalized, s),
            StringTest::Contains(s) if s.is_empty() => Vec::new(),
            StringTest::Contains(s) => {
                let p = self.params.text(s);
                vec![match self.dialect() {
                    Dialect::Sqlite => format!("instr({normalized}, {p}) > 0"),
                    Dialect::Postgres => format!("strpos({normalized}, {p}) > 0"),
                }]
            }
            // The stored normalized form is a function of the value as written, so the
            // comparison of both is the comparison of the exact value, led by the index.
            StringTest::Exact(s) => vec![
                format!("{normalized} = {}", self.params.text(&normalize_string(s))),
                format!("{exact} = {}", self.params.text(s)),
            ],
        })
    }

    /// `col` starts with `prefix`, as the byte range `[prefix, successor)`.
    fn prefix(&mut self, col: &str, prefix: &str) -> Vec<String> {
        if prefix.is_empty() {
            return Vec::new();
        }
        let mut conds = vec![format!("{col} >= {}", self.params.text(prefix))];
        if let Some(upper) = prefix_successor(prefix) {
            conds.push(format!("{col} < {}", self.params.text(&upper)));
        }
        conds
    }

    fn token(
        &mut self,
        test: &TokenTest,
        code: &str,
        system: &str,
        text: &str,
        type_cols: Option<(&str, &str)>,
    ) -> Result<Conds, StoreError> {
        let mut conds = Vec::new();
        match &test.kind {
            TokenKind::Eq | TokenKind::Not => {
                match test.system.as_deref() {
                    None => {}
                    // No system: stored as ''.
                    Some("") => conds.push(format!("{system} = ''")),
                    Some(s) => conds.push(format!("{system} = {}", self.params.text(s))),
                }
                match test.code.as_deref() {
                    None => {}
                    Some("") => return Ok(None),
                    Some(c) => conds.push(format!("{code} = {}", self.params.text(c))),
                }
            }
            TokenKind::Text => {
                conds.push(format!("{text} <> ''"));
                conds.extend(self.prefix(text, test.code.as_deref().unwrap_or("")));
            }
            TokenKind::OfType { value } => {
                let Some((type_system, type_code)) = type_cols else {
                    return Err(StoreError::InvalidSearch(
                        ":of-type is not supported in a composite".into(),
                    ));
                };
                match (test.system.as_deref(), test.code.as_deref()) {
                    (Some(s), Some(c)) if !s.is_empty() && !c.is_empty() && !value.is_empty() => {
                        conds.push(format!("{type_system} = {}", self.params.text(s)));
                        conds.push(format!("{type_code} = {}", self.params.text(c)));
                        conds.push(format!("{code} = {}", self.params.text(value)));
                    }
                    _ => return Ok(None),
                }
            }
        }
        Ok(Some(conds))
    }

    fn reference(&mut self, test: &ReferenceTest, id: &str, ty: &str, reference: &str) -> Conds {
        match test {
            ReferenceTest::Local { target_type, id: i } => {
                if i.is_empty() {
                    return None;
                }
                let mut conds = vec![format!("{id} = {}", self.params.text(i))];
                match target_type.as_deref() {
                    None => {}
                    Some("") => return None,
                    Some(t) => conds.push(format!("{ty} = {}", self.params.text(t))),
                }
                Some(conds)
            }
            ReferenceTest::Url(u) => {
                if u.is_empty() {
                    return None;
                }
                // The target columns of a row are derived from the reference as written
                // (parsed, or '' for a canonical, or split from an inline resource's
                // `Type/id`), so every pair they can hold for `u` is known: listing them lets
                // the lookup index answer an exact comparison of the reference.
                let (ids, types) = url_targets(u);
                let ids = self.params.texts(ids.iter().map(String::as_str));
                let types = self.params.texts(types.iter().map(String::as_str));
                Some(vec![
                    format!("{id} IN {ids}"),
                    format!("{ty} IN {types}"),
                    format!("{reference} = {}", self.params.text(u)),
                ])
            }
        }
    }

    /// The date prefixes of `matching::date_matches` on a stored range `[start, end]`.
    fn date(&mut self, test: &DateTest, start: &str, end: &str) -> Conds {
        let (s2, e2) = (test.start, test.end);
        Some(match test.prefix {
            Prefix::Eq | Prefix::Ne => {
                let eq = format!(
                    "{start} >= {} AND {end} <= {}",
                    self.params.int(s2),
                    self.params.int(e2)
                );
                if test.prefix == Prefix::Ne {
                    vec![format!("NOT ({eq})")]
                } else {
                    vec![eq]
                }
            }
            Prefix::Gt => vec![format!("{end} > {}", self.params.int(e2))],
            Prefix::Lt => vec![format!("{start} < {}", self.params.int(s2))],
            // gt || eq  ==  e1 > e2 || s1 >= s2 (the second part of eq follows from not gt)
            Prefix::Ge => vec![format!(
                "({end} > {} OR {start} >= {})",
                self.params.int(e2),
                self.params.int(s2)
            )],
            // lt || eq  ==  s1 < s2 || e1 <= e2
            Prefix::Le => vec![format!(
                "({start} < {} OR {end} <= {})",
                self.params.int(s2),
                self.params.int(e2)
            )],
            Prefix::Sa => vec![format!("{start} > {}", self.params.int(e2))],
            Prefix::Eb => vec![format!("{end} < {}", self.params.int(s2))],
            Prefix::Ap => {
                let (lo, hi) = self.ap_bounds(test);
                vec![
                    format!("{start} <= {}", self.params.int(hi)),
                    format!("{end} >= {}", self.params.int(lo)),
                ]
            }
        })
    }

    /// The number prefixes of `matching::number_matches`.
    fn number(&mut self, test: &NumberTest, v: &str) -> Conds {
        let eq = |p: &mut Params| {
            format!(
                "{v} >= {} AND {v} < {}",
                p.real(test.low),
                p.real(test.high)
            )
        };
        let p = &mut self.params;
        Some(vec![match test.prefix {
            Prefix::Eq => eq(p),
            Prefix::Ne => format!("NOT ({})", eq(p)),
            Prefix::Gt => format!("{v} > {}", p.real(test.value)),
            Prefix::Lt => format!("{v} < {}", p.real(test.value)),
            Prefix::Ge => format!("{v} >= {}", p.real(test.value)),
            Prefix::Le => format!("{v} <= {}", p.real(test.value)),
            Prefix::Sa => format!("{v} >= {}", p.real(test.high)),
            Prefix::Eb => format!("{v} < {}", p.real(test.low)),
            Prefix::Ap => {
                let eq = eq(p);
                let value = p.real(test.value);
                let tolerance = p.real(test.value.abs() / 10.0);
                format!("(({eq}) OR abs({v} - {value}) <= {tolerance})")
            }
        }])
    }

    /// `matching::quantity_matches`: the unit, then the number.
    fn quantity(
        &mut self,
        test: &QuantityTest,
        value: &str,
        system: &str,
        code: &str,
        unit: &str,
    ) -> Conds {
        let mut conds = Vec::new();
        match (test.system.as_deref(), test.code.as_deref()) {
            (None, None) => {}
            (Some(""), _) | (_, Some("")) => return None,
            (Some(s), None) => conds.push(format!("{system} = {}", self.params.text(s))),
            (Some(s), Some(c)) => {
                conds.push(format!("{system} = {}", self.params.text(s)));
                conds.push(format!("{code} = {}", self.params.text(c)));
            }
            (None, Some(c)) => {
                let c = self.params.text(c);
                conds.push(format!("({code} = {c} OR {unit} = {c})"));
            }
        }
        conds.extend(self.number(&test.number, value)?);
        Some(conds)
    }

    /// `matching::uri_matches`: exact, or by path segments.
    fn uri(&mut self, test: &UriTest, col: &str) -> Conds {
        match test {
            UriTest::Eq(u) if u.is_empty() => None,
            UriTest::Eq(u) => Some(vec![format!("{col} = {}", self.params.text(u))]),
            UriTest::Below(u) => {
                let base = if u.ends_with('/') {
                    u.clone()
                } else {
                    format!("{u}/")
                };
                let under = self.prefix(col, &base).join(" AND ");
                Some(vec![format!(
                    "({col} = {} OR ({under}))",
                    self.params.text(u)
                )])
            }
            UriTest::Above(u) => {
                let candidates = uri_ancestors(u);
                let list = self.params.texts(candidates.iter().map(String::as_str));
                Some(vec![format!("{col} IN {list}")])
            }
        }
    }

    /// A composite test: every component on its slot of the same row, negations applied to
    /// the component's one value (`matching::value_matches`).
    fn composite(
        &mut self,
        scope: &Scope,
        code: &str,
        tests: &[Test],
    ) -> Result<Conds, StoreError> {
        let Some(param) = scope
            .param(code)
            .filter(|p| p.kind == SearchParamType::Composite)
        else {
            return Ok(None);
        };
        if tests.len() != param.components.len() || tests.len() > schema::COMPOSITE_SLOTS {
            return Ok(None);
        }
        let mut conds = Vec::new();
        for (slot, (test, component)) in tests.iter().zip(&param.components).enumerate() {
            let c = |col: &str| format!("{{i}}.c{}_{col}", slot + 1);
            let (code_col, system_col, text_col) = (c("code"), c("system"), c("text"));
            let (num, start, end) = (c("num"), c("start"), c("end"));
            let negated = is_negation(test);
            let positive;
            let test = if negated {
                positive = positive_form(test);
                &positive
            } else {
                test
            };
            let part = match (test, component.kind) {
                (Test::String(t), SearchParamType::String) => {
                    self.string(t, &code_col, &system_col)
                }
                (Test::Token(t), SearchParamType::Token) => {
                    self.token(t, &code_col, &system_col, &text_col, None)?
                }
                (Test::Reference(t), SearchParamType::Reference) => {
                    self.reference(t, &code_col, &system_col, &text_col)
                }
                (Test::Date(t), SearchParamType::Date) => self.date(t, &start, &end),
                (Test::Number(t), SearchParamType::Number) => self.number(t, &num),
                (Test::Quantity(t), SearchParamType::Quantity) => {
                    self.quantity(t, &num, &system_col, &code_col, &text_col)
                }
                (Test::Uri(t), SearchParamType::Uri) => self.uri(t, &code_col),
                // A value of another type than the component's never matches.
                _ => None,
            };
            match (part, negated) {
                (None, false) => return Ok(None),
                (None, true) => {}
                (Some(part), false) => conds.extend(part),
                (Some(part), true) if part.is_empty() => return Ok(None),
                (Some(part), true) => conds.push(format!("NOT ({})", part.join(" AND "))),
            }
        }
        Ok(Some(conds))
    }
}

/// The least string greater than every string that starts with `prefix`, in code point (and
/// UTF-8 byte) order: `prefix` with its last character incremented; `None` if there is none.
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            c => char::from_u32(c + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Every `(target_id, target_type)` a reference index row written as `u` can carry, as two
/// lists: `('', '')` for a canonical or a reference without `Type/id`, what `parse_reference`
/// reads, and `Type/id` split at each `/` (an inline resource's `Type/id` as written).
fn url_targets(u: &str) -> (Vec<String>, Vec<String>) {
    let mut ids = vec![String::new()];
    let mut types = vec![String::new()];
    let mut add = |t: &str, i: &str| {
        if !ids.iter().any(|x| x == i) {
            ids.push(i.to_owned());
        }
        if !types.iter().any(|x| x == t) {
            types.push(t.to_owned());
        }
    };
    if let Some((t, i)) = parse_reference(u) {
        add(t, i);
    }
    for (pos, _) in u.match_indices('/') {
        add(&u[..pos], &u[pos + 1..]);
    }
    (ids, types)
}

/// The stored URIs that `u` is at or below (`matching::is_at_or_below(u, stored)`): `u`
/// itself and each prefix of it that ends with `/` or is followed by one.
fn uri_ancestors(u: &str) -> Vec<String> {
    let mut out = vec![u.to_owned()];
    for (pos, _) in u.match_indices('/') {
        for candidate in [&u[..pos], &u[..=pos]] {
            if !candidate.is_empty() && !out.iter().any(|x| x == candidate) {
                out.push(candidate.to_owned());
            }
        }
    }
    out
}

/// Whether a row of `resource_type` meeting `condition` always meets `allowed`: the same test,
/// or a reference to `Patient/X` through a parameter of the Patient compartment, which puts the
/// row in that compartment (the compartment's SQL reads those same reference rows).
fn implies(resource_type: &str, condition: &Condition, allowed: &Condition) -> bool {
    if condition == allowed {
        return true;
    }
    match (condition, allowed) {
        (
            Condition::Param {
                code,
                test: Test::Reference(ReferenceTest::Local { target_type, id }),
            },
            Condition::Compartment {
                compartment_type,
                id: member,
            },
        ) => {
            compartment_type == "Patient"
                && target_type.as_deref() == Some("Patient")
                && id == member
                && patient_compartment_params(resource_type).contains(code)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxmed_fhir::search::matching::is_at_or_below;

    #[test]
    fn successor_bounds_exactly_the_strings_with_the_prefix() {
        assert_eq!(prefix_successor("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        let upper = prefix_successor("ab").unwrap();
        for s in ["ab", "abz", "ab\u{10FFFF}\u{10FFFF}", "ab\u{10FFFF}x"] {
            assert!(s >= "ab" && s < upper.as_str(), "{s:?}");
        }
        for s in ["aa", "ac", "b", "a"] {
            assert!(!(s >= "ab" && s < upper.as_str()), "{s:?}");
        }
    }

    #[test]
    fn ancestors_are_what_above_matches() {
        let u = "http://a.org/fhir/ValueSet/1";
        let candidates = uri_ancestors(u);
        for stored in [
            "http://a.org/fhir/ValueSet/1",
            "http://a.org/fhir/ValueSet",
            "http://a.org/fhir/ValueSet/",
            "http://a.org/fhir",
            "http://a.org/",
            "http:/",
        ] {
            assert!(is_at_or_below(u, stored), "{stored}");
            assert!(candidates.iter().any(|c| c == stored), "{stored}");
        }
        for stored in ["http://a.org/fh", "http://a.org/fhir/ValueSet/12"] {
            assert!(!is_at_or_below(u, stored));
            assert!(!candidates.iter().any(|c| c == stored), "{stored}");
        }
    }

    #[test]
    fn a_reference_to_a_patient_implies_only_that_patients_compartment() {
        let reference = |code: &str, target_type: Option<&str>, id: &str| Condition::Param {
            code: code.into(),
            test: Test::Reference(ReferenceTest::Local {
                target_type: target_type.map(str::to_owned),
                id: id.into(),
            }),
        };
        let compartment = |t: &str, id: &str| Condition::Compartment {
            compartment_type: t.into(),
            id: id.into(),
        };
        let x = compartment("Patient", "x");
        assert!(implies(
            "Observation",
            &reference("subject", Some("Patient"), "x"),
            &x
        ));
        assert!(implies(
            "Observation",
            &reference("performer", Some("Patient"), "x"),
            &x
        ));
        assert!(implies("Observation", &x, &x));
        // Another Patient, a bare id (any type), another type, a parameter outside the
        // compartment, another compartment type: the policy must still be checked.
        assert!(!implies(
            "Observation",
            &reference("subject", Some("Patient"), "y"),
            &x
        ));
        assert!(!implies(
            "Observation",
            &reference("subject", None, "x"),
            &x
        ));
        assert!(!implies(
            "Observation",
            &reference("subject", Some("Group"), "x"),
            &x
        ));
        assert!(!implies(
            "Observation",
            &reference("focus", Some("Patient"), "x"),
            &x
        ));
        assert!(!implies(
            "Observation",
            &reference("subject", Some("Patient"), "x"),
            &compartment("Practitioner", "x")
        ));
    }

    #[test]
    fn url_targets_cover_every_derivation() {
        let (ids, types) = url_targets("http://x.org/fhir/Patient/1");
        assert!(ids.contains(&"1".to_owned()) && types.contains(&"Patient".to_owned()));
        assert!(ids.contains(&String::new()) && types.contains(&String::new()));
        let (ids, types) = url_targets("urn:uuid:1");
        assert_eq!((ids, types), (vec![String::new()], vec![String::new()]));
    }
}
