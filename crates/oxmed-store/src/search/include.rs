//! `_include` and `_revinclude`, level by level: the first level starts from the matched page
//! and applies every include; each further level applies the `:iterate` ones to what the level
//! before added, until nothing new comes or `MAX_LEVELS` is reached (so reference cycles end).
//! One statement per level. Included resources are live, of the same project and visible under
//! the restriction of their type; a type the restriction does not list is never included.

use std::collections::HashSet;

use oxmed_fhir::search::{Include, Restriction, SearchRequest};
use oxmed_fhir::search_parameter::{SearchParamType, SearchParameters};

use super::Statement;
use super::compile::{Compiler, Pred, Scope, and};
use super::render::{Mode, Render};
use crate::projects::ProjectFilter;
use crate::schema::Dialect;
use crate::{StoreError, StoredResource};

/// Levels of `:iterate` followed after the first.
pub(crate) const MAX_LEVELS: usize = 5;
/// Resources one level may add; FHIR lets a server bound includes, and an unbounded
/// `_revinclude` of a busy Patient would read every resource about them.
pub(crate) const MAX_PER_LEVEL: usize = 1000;

pub(crate) struct Includes<'a> {
    dialect: Dialect,
    projects: &'a ProjectFilter,
    include: &'a [Include],
    revinclude: &'a [Include],
    restriction: Option<&'a Restriction>,
    level: usize,
    seen: HashSet<i64>,
    /// (`rid`, type) of what the next level starts from: the page, then what the last level
    /// added.
    sources: Vec<(i64, String)>,
}

impl<'a> Includes<'a> {
    /// `page`: the matches, where the first level starts and which are never included again.
    pub(crate) fn new(
        dialect: Dialect,
        projects: &'a ProjectFilter,
        request: &'a SearchRequest,
        restriction: Option<&'a Restriction>,
        page: &[(i64, StoredResource)],
    ) -> Includes<'a> {
        Includes {
            sources: sources(page),
            dialect,
            projects,
            include: &request.include,
            revinclude: &request.revinclude,
            restriction,
            level: 0,
            seen: page.iter().map(|(rid, _)| *rid).collect(),
        }
    }

    /// The statement of the next level, over the page first, then what the previous level
    /// added ([`Includes::fresh`]). `None` when there is nothing more to include.
    pub(crate) fn next(&mut self) -> Result<Option<Statement>, StoreError> {
        let sources = &self.sources;
        if sources.is_empty() || self.level > MAX_LEVELS {
            return Ok(None);
        }
        let first = self.level == 0;
        self.level += 1;
        let mut compiler = Compiler::new(self.dialect, self.projects, self.restriction);
        let mut pieces = Vec::new();
        for include in self.include.iter().filter(|i| first || i.iterate) {
            let rids: Vec<i64> = sources
                .iter()
                .filter(|(_, t)| *t == include.source_type)
                .map(|(rid, _)| *rid)
                .collect();
            if rids.is_empty() {
                continue;
            }
            if let Some(piece) = self.forward(&mut compiler, include, rids)? {
                pieces.push(piece);
            }
        }
        for include in self.revinclude.iter().filter(|i| first || i.iterate) {
            let rids: Vec<i64> = sources
                .iter()
                .filter(|(_, t)| include.target_type.as_ref().is_none_or(|tt| tt == t))
                .map(|(rid, _)| *rid)
                .collect();
            if rids.is_empty() {
                continue;
            }
            if let Some(piece) = self.reverse(&mut compiler, include, rids)? {
                pieces.push(piece);
            }
        }
        if pieces.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT u.* FROM ({}) u LIMIT {}",
            pieces.join(" UNION ALL "),
            MAX_PER_LEVEL
        );
        Ok(Some(Statement {
            sql,
            params: compiler.params.values,
            prepared: false,
        }))
    }

    /// The rows of a level not seen at an earlier level (or twice in this one), in `rid`
    /// order; the next level starts from them.
    pub(crate) fn fresh(
        &mut self,
        mut rows: Vec<(i64, StoredResource)>,
    ) -> impl Iterator<Item = StoredResource> {
        rows.sort_by_key(|(rid, _)| *rid);
        rows.retain(|(rid, _)| self.seen.insert(*rid));
        self.sources = sources(&rows);
        rows.into_iter().map(|(_, r)| r)
    }

    /// The rows `r` visible as included resources of `scope`: live, in the project, allowed by
    /// the restriction. The restriction is checked row by row: the referenced rows drive.
    fn visible(&self, compiler: &mut Compiler<'_>, scope: &Scope) -> Result<String, StoreError> {
        let pred: Pred = and(vec![compiler.base(scope), compiler.restriction(scope)?]);
        let mut render = Render::new(self.dialect, compiler.project());
        Ok(render.conjunction(&pred, "r", Mode::Check).0)
    }

    /// The targets of `include`'s references from the sources `rids`.
    fn forward(
        &self,
        compiler: &mut Compiler<'_>,
        include: &Include,
        rids: Vec<i64>,
    ) -> Result<Option<String>, StoreError> {
        let scope = match &include.target_type {
            Some(t) => Scope::One(t.clone()),
            None => Scope::All,
        };
        let visible = self.visible(compiler, &scope)?;
        let Some(codes) = reference_codes(include, compiler) else {
            return Ok(None);
        };
        let list = compiler.params.push(crate::sql::SqlValue::IntList(rids));
        let source_type = compiler.params.text(&include.source_type);
        // The targets by their key `(resource_type, id)`, then their rows by `rid`, in that
        // order: with the target type unknown, SQLite would otherwise read the project's rows
        // by `project_key` and test each `rid` (a row-value `IN` on `(resource_type, id)` does
        // not reach that index either).
        let mut refs = format!(
            "SELECT DISTINCT x.rid FROM reference_idx i CROSS JOIN resources x WHERE {} AND i.project {} AND i.resource_type = {source_type} AND i.code IN {codes} AND x.resource_type = i.target_type AND x.id = i.target_id",
            self.dialect.in_list("i.rid", &list),
            compiler.project(),
        );
        if let Some(t) = &include.target_type {
            refs.push_str(&format!(" AND i.target_type = {}", compiler.params.text(t)));
        }
        Ok(Some(format!(
            "SELECT r.rid, {} FROM ({refs}) d CROSS JOIN resources r WHERE r.rid = d.rid AND {visible}",
            crate::schema::RESOURCE_COLUMNS
        )))
    }

    /// The resources of `include.source_type` whose references point at the sources `rids`.
    fn reverse(
        &self,
        compiler: &mut Compiler<'_>,
        include: &Include,
        rids: Vec<i64>,
    ) -> Result<Option<String>, StoreError> {
        let scope = Scope::One(include.source_type.clone());
        let visible = self.visible(compiler, &scope)?;
        let Some(codes) = reference_codes(include, compiler) else {
            return Ok(None);
        };
        let list = compiler.params.push(crate::sql::SqlValue::IntList(rids));
        let source_type = compiler.params.text(&include.source_type);
        let refs = format!(
            "SELECT i.rid FROM resources m CROSS JOIN reference_idx i WHERE {} AND i.project {} AND i.resource_type = {source_type} AND i.code IN {codes} AND i.target_id = m.id AND i.target_type = m.resource_type",
            self.dialect.in_list("m.rid", &list),
            compiler.project(),
        );
        Ok(Some(format!(
            "SELECT r.rid, {} FROM resources r WHERE {visible} AND r.rid IN ({refs})",
            crate::schema::RESOURCE_COLUMNS
        )))
    }
}

fn sources(rows: &[(i64, StoredResource)]) -> Vec<(i64, String)> {
    rows.iter()
        .map(|(rid, r)| (*rid, r.resource_type.clone()))
        .collect()
}

/// `(c1, c2, ...)`: the include's parameter, or for `*` every reference parameter of the
/// source type; `None` if there is none.
fn reference_codes(include: &Include, compiler: &mut Compiler<'_>) -> Option<String> {
    let codes: Vec<String> = match &include.reference_code {
        Some(code) => vec![code.clone()],
        None => SearchParameters::global()
            .for_type(&include.source_type)
            .iter()
            .filter(|p| p.kind == SearchParamType::Reference)
            .map(|p| p.code.clone())
            .collect(),
    };
    if codes.is_empty() {
        return None;
    }
    let placeholders: Vec<String> = codes.iter().map(|c| compiler.params.text(c)).collect();
    Some(format!("({})", placeholders.join(", ")))
}
