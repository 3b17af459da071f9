//! Statement shape: the columns a statement names, whether it reads every
//! column (`*`), writes without a row bound, or caps its result, and which
//! injection/misuse [`Signals`] it carries. It owns those rules and is
//! driven by [`crate::facts`]: from the sqlparser AST walk when the skeleton
//! parses, and from a token scan when it does not.
//!
//! Like every fact, a shape must be a function of the normalised text: it
//! never looks at literal values (in the skeleton they are `0`/`''`
//! stand-ins, and `$1` parameters look exactly like literals), and when
//! unsure it reports the more dangerous shape.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_relations, AlterTableOperation, AssignmentTarget, BinaryOperator,
    CommentObject, ConflictTarget, Expr, FromTable, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, InTarget, JoinConstraint, JoinOperator, LimitClause, MergeAction,
    MergeUpdateKind, ObjectName, OnConflictAction, OnInsert, Query, Select, SelectItem, SetExpr,
    SetOperator, Statement, TableFactor, TableWithJoins, UnaryOperator, UpdateTableFromKind,
    UtilityOption, Value,
};

use crate::facts::{
    is_word, kind_at, skip_group, skip_name, token_name, writes_server_file, Operation,
};
use crate::lexer::{Dialect, Token, TokenKind};
use crate::signals::Signals;

/// The shape facts of one statement (see the field docs on
/// [`crate::facts::StatementFacts`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Unsorted, possibly repeated: the caller sorts and deduplicates.
    pub columns: Vec<String>,
    pub select_star: bool,
    pub unbounded_write: bool,
    pub limited: bool,
    pub signals: Signals,
}

// ---------------------------------------------------------------------------
// Name lists
// ---------------------------------------------------------------------------

/// Functions that sleep or burn CPU on purpose: blind, time-based probing.
const TIME_DELAY_FUNCTIONS: &[&str] = &[
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "sleep",
    "benchmark",
];
/// Functions that read, list or write server-side files.
const FILE_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "load_file",
];
/// Functions that build text from character codes or encoded strings.
const ENCODING_FUNCTIONS: &[&str] = &[
    "chr",
    "char",
    "decode",
    "convert_from",
    "unhex",
    "from_base64",
];
/// Function-name prefix of the dblink extension (`dblink`, `dblink_exec`,
/// `dblink_connect_u`, …): connections from the server to anywhere.
const NETWORK_FUNCTION_PREFIX: &str = "dblink";
/// PostgreSQL catalog relations that describe the schema or the server,
/// bare or `pg_catalog`-qualified.
const PG_CATALOG_PROBES: &[&str] = &[
    "pg_class",
    "pg_attribute",
    "pg_namespace",
    "pg_tables",
    "pg_views",
    "pg_roles",
    "pg_user",
    "pg_database",
    "pg_proc",
    "pg_settings",
    "pg_stat_activity",
    "pg_indexes",
    "pg_stat_statements",
];
/// PostgreSQL catalog relations that hold credentials or large-object data,
/// bare or `pg_catalog`-qualified.
const PG_CATALOG_SECRETS: &[&str] = &[
    "pg_shadow",
    "pg_authid",
    "pg_user_mapping",
    "pg_user_mappings",
    "pg_largeobject",
];
/// MySQL schemas whose every relation is server metadata (qualified only:
/// `sys` or `mysql` alone may be an application table).
const MYSQL_CATALOG_SCHEMAS: &[&str] = &["mysql", "performance_schema", "sys"];
/// Tables of the `mysql` schema that hold credentials: password hashes
/// (`user`; MariaDB 10.4+ keeps them in `global_priv`, with `user` a view),
/// the replication password (`slave_master_info`, stored in clear) and
/// FEDERATED server passwords (`servers`).
const MYSQL_CATALOG_SECRETS: &[&str] = &["user", "global_priv", "slave_master_info", "servers"];

/// Signals carried by the names of the relations and functions a statement
/// touches (from the AST or the keyword scan alike).
pub(crate) fn name_signals(tables: &[String], functions: &[String], dialect: Dialect) -> Signals {
    let mut s = Signals::empty();
    let mysql = dialect == Dialect::MySql;
    let eq = |a: &str, b: &str| {
        if mysql {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let in_list = |list: &[&str], name: &str| list.iter().any(|w| eq(w, name));
    for f in functions {
        let (_, last) = split_last(f);
        if in_list(TIME_DELAY_FUNCTIONS, last) {
            s.insert(Signals::TIME_DELAY);
        }
        if in_list(FILE_FUNCTIONS, last) {
            s.insert(Signals::FILE_ACCESS);
        }
        if in_list(ENCODING_FUNCTIONS, last) {
            s.insert(Signals::ENCODED_LITERAL);
        }
        let prefix = last.get(..NETWORK_FUNCTION_PREFIX.len());
        if prefix.is_some_and(|p| eq(p, NETWORK_FUNCTION_PREFIX)) {
            s.insert(Signals::NETWORK_ACCESS);
        }
    }
    for t in tables {
        s.insert(catalog_signal(t, dialect));
    }
    s
}

/// CATALOG_PROBE, CATALOG_SECRET or nothing, for one normalised relation.
fn catalog_signal(name: &str, dialect: Dialect) -> Signals {
    let (schema, last) = split_last(name);
    match dialect {
        Dialect::Postgres => {
            if schema == Some("information_schema") {
                return Signals::CATALOG_PROBE;
            }
            if schema.is_some_and(|s| s != "pg_catalog") {
                return Signals::empty();
            }
            if PG_CATALOG_SECRETS.contains(&last) {
                Signals::CATALOG_SECRET
            } else if PG_CATALOG_PROBES.contains(&last) {
                Signals::CATALOG_PROBE
            } else {
                Signals::empty()
            }
        }
        Dialect::MySql => {
            let Some(schema) = schema else {
                return Signals::empty();
            };
            let secret = MYSQL_CATALOG_SECRETS
                .iter()
                .any(|t| last.eq_ignore_ascii_case(t));
            if schema.eq_ignore_ascii_case("mysql") && secret {
                Signals::CATALOG_SECRET
            } else if schema.eq_ignore_ascii_case("information_schema")
                || MYSQL_CATALOG_SCHEMAS
                    .iter()
                    .any(|s| schema.eq_ignore_ascii_case(s))
            {
                Signals::CATALOG_PROBE
            } else {
                Signals::empty()
            }
        }
    }
}

/// `(schema, last)` of a normalised dotted name: `a.b.c` → `(Some("b"), "c")`.
fn split_last(name: &str) -> (Option<&str>, &str) {
    let mut parts = name.rsplit('.');
    let last = parts.next().unwrap_or(name);
    (parts.next(), last)
}

// ---------------------------------------------------------------------------
// From the AST
// ---------------------------------------------------------------------------

/// Collects a [`Shape`] while [`crate::facts`]' visitor walks the AST; each
/// method is called from the visitor hook of the same name.
#[derive(Default)]
pub(crate) struct ShapeCollector {
    dialect: Dialect,
    shape: Shape,
    /// Inside a plain `EXPLAIN` (no ANALYZE), which does not run its
    /// statement: writes there are not unbounded writes.
    plain_explain: usize,
    /// Inside a `SET` statement, whose values are settings, not columns.
    in_set: usize,
    /// `SELECT … INTO` targets (tables or variables, not columns).
    not_columns: HashSet<usize>,
}

impl ShapeCollector {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            ..Self::default()
        }
    }

    pub fn finish(self, ast: &[Statement]) -> Shape {
        let mut shape = self.shape;
        shape.limited = matches!(ast.first(), Some(Statement::Query(q)) if query_limited(q));
        shape
    }

    fn column(&mut self, ident: &Ident) {
        self.shape.columns.push(ident_name(ident));
    }

    fn column_of(&mut self, name: &ObjectName) {
        if let Some(ident) = name.0.last().and_then(|p| p.as_ident()) {
            self.column(ident);
        }
    }

    /// A write target (`SET x = …`, `INSERT INTO t (x)`). PostgreSQL reads
    /// `x.y` there as column `x`, subfield `y`, so every part is reported;
    /// MySQL reads it as table `x`, column `y`.
    fn target(&mut self, name: &ObjectName) {
        match self.dialect {
            Dialect::Postgres => {
                for ident in name.0.iter().filter_map(|p| p.as_ident()) {
                    self.column(ident);
                }
            }
            Dialect::MySql => self.column_of(name),
        }
    }

    fn star_items(&mut self, items: &[SelectItem]) {
        if items.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            self.shape.select_star = true;
        }
    }

    fn assignments(&mut self, assignments: &[sqlparser::ast::Assignment]) {
        for a in assignments {
            match &a.target {
                AssignmentTarget::ColumnName(name) => self.target(name),
                AssignmentTarget::Tuple(names) => {
                    for name in names {
                        self.target(name);
                    }
                }
            }
        }
    }

    /// `JOIN … USING (cols)` names columns outside any expression.
    fn join_columns(&mut self, twj: &TableWithJoins) {
        for join in &twj.joins {
            let constraint = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::Semi(c)
                | JoinOperator::LeftSemi(c)
                | JoinOperator::RightSemi(c)
                | JoinOperator::Anti(c)
                | JoinOperator::LeftAnti(c)
                | JoinOperator::RightAnti(c)
                | JoinOperator::StraightJoin(c)
                | JoinOperator::AsOf { constraint: c, .. } => c,
                _ => continue,
            };
            if let JoinConstraint::Using(names) | JoinConstraint::UsingAlias(names, _) = constraint
            {
                for name in names {
                    self.column_of(name);
                }
            }
        }
    }

    fn write(&mut self, selection: Option<&Expr>) {
        if self.plain_explain == 0 && unbounded(selection, self.dialect) {
            self.shape.unbounded_write = true;
        }
    }

    pub fn statement(&mut self, stmt: &Statement) {
        match stmt {
            Statement::Update(u) => {
                self.write(u.selection.as_ref());
                self.assignments(&u.assignments);
                self.join_columns(&u.table);
                if let Some(
                    UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from),
                ) = &u.from
                {
                    for t in from {
                        self.join_columns(t);
                    }
                }
                if let Some(r) = &u.returning {
                    self.star_items(r);
                }
            }
            Statement::Delete(d) => {
                self.write(d.selection.as_ref());
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                for t in from.iter().chain(d.using.iter().flatten()) {
                    self.join_columns(t);
                }
                if let Some(r) = &d.returning {
                    self.star_items(r);
                }
            }
            Statement::Insert(ins) => {
                for c in &ins.columns {
                    self.target(c);
                }
                self.assignments(&ins.assignments);
                match &ins.on {
                    Some(OnInsert::DuplicateKeyUpdate(a)) => self.assignments(a),
                    Some(OnInsert::OnConflict(oc)) => {
                        if let Some(ConflictTarget::Columns { columns, .. }) = &oc.conflict_target {
                            for c in columns {
                                self.column(c);
                            }
                        }
                        if let OnConflictAction::DoUpdate(u) = &oc.action {
                            self.assignments(&u.assignments);
                        }
                    }
                    _ => {}
                }
                if let Some(r) = &ins.returning {
                    self.star_items(r);
                }
            }
            Statement::Merge(m) => {
                for clause in &m.clauses {
                    match &clause.action {
                        MergeAction::Update(u) => match &u.kind {
                            MergeUpdateKind::Set(a) => self.assignments(a),
                            MergeUpdateKind::Wildcard => self.shape.select_star = true,
                        },
                        MergeAction::Insert(i) => {
                            for c in &i.columns {
                                self.target(c);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Statement::Copy {
                source: sqlparser::ast::CopySource::Table { columns, .. },
                ..
            } => {
                for c in columns {
                    self.column(c);
                }
            }
            Statement::CreateTable(ct) => {
                for c in &ct.columns {
                    self.column(&c.name);
                }
            }
            Statement::AlterTable(at) => {
                for op in &at.operations {
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            self.column(&column_def.name)
                        }
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            for c in column_names {
                                self.column(c);
                            }
                        }
                        AlterTableOperation::RenameColumn {
                            old_column_name,
                            new_column_name,
                        } => {
                            self.column(old_column_name);
                            self.column(new_column_name);
                        }
                        AlterTableOperation::AlterColumn { column_name, .. } => {
                            self.column(column_name)
                        }
                        _ => {}
                    }
                }
            }
            Statement::Comment {
                object_type: CommentObject::Column,
                object_name,
                ..
            } => self.column_of(object_name),
            Statement::Explain {
                analyze, options, ..
            } if !explain_runs(*analyze, options.as_deref()) => self.plain_explain += 1,
            Statement::Set(_) => self.in_set += 1,
            _ => {}
        }
    }

    pub fn post_statement(&mut self, stmt: &Statement) {
        match stmt {
            Statement::Explain {
                analyze, options, ..
            } if !explain_runs(*analyze, options.as_deref()) => {
                self.plain_explain = self.plain_explain.saturating_sub(1)
            }
            Statement::Set(_) => self.in_set = self.in_set.saturating_sub(1),
            _ => {}
        }
    }

    pub fn query(&mut self, q: &Query) {
        // `TABLE t` reads every column; UNION-based extraction.
        let mut stack = vec![&*q.body];
        while let Some(e) = stack.pop() {
            match e {
                SetExpr::Table(_) => self.shape.select_star = true,
                SetExpr::SetOperation {
                    left, op, right, ..
                } => {
                    if *op == SetOperator::Union && union_branch_suspicious(right, self.dialect) {
                        self.shape.signals.insert(Signals::UNION_SELECT);
                    }
                    stack.push(left);
                    stack.push(right);
                }
                _ => {}
            }
        }
    }

    pub fn select(&mut self, s: &Select) {
        self.star_items(&s.projection);
        if !self.shape.select_star && self.dialect == Dialect::Postgres && whole_row_reference(s) {
            self.shape.select_star = true;
        }
        if let Some(into) = &s.into {
            for target in &into.targets {
                self.not_columns.insert(addr(target));
            }
        }
        for twj in &s.from {
            self.join_columns(twj);
        }
    }

    pub fn table_factor(&mut self, factor: &TableFactor) {
        if let TableFactor::NestedJoin {
            table_with_joins, ..
        } = factor
        {
            self.join_columns(table_with_joins);
        }
    }

    pub fn expr(&mut self, expr: &Expr) {
        let column = self.in_set == 0 && !self.not_columns.contains(&addr(expr));
        let tautology = match expr {
            Expr::Identifier(id) => {
                if column && is_column_ident(id) {
                    self.column(id);
                }
                false
            }
            Expr::CompoundIdentifier(ids) => {
                if let (true, Some(last)) = (column, ids.last()) {
                    self.column(last);
                }
                false
            }
            Expr::QualifiedWildcard(..) => {
                self.shape.select_star = true;
                false
            }
            Expr::Function(f) => {
                // `row_to_json(t.*)` reads every column; `count(*)` does not.
                let qualified_star =
                    |a: &FunctionArgExpr| matches!(a, FunctionArgExpr::QualifiedWildcard(_));
                self.shape.select_star |= function_args(f).any(qualified_star);
                false
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => tautology_operand(left) || tautology_operand(right),
            // MySQL's `||` is OR (unless PIPES_AS_CONCAT), but sqlparser
            // parses it as a tight-binding concatenation: `a = ? || 1 = 1`
            // becomes `(a = (? || 1)) = 1`, so only the right operand is
            // the OR branch.
            Expr::BinaryOp {
                op: BinaryOperator::StringConcat,
                right,
                ..
            } => self.dialect == Dialect::MySql && tautology_operand(right),
            _ => false,
        };
        if tautology {
            self.shape.signals.insert(Signals::TAUTOLOGY);
        }
    }
}

/// A node's address, as its identity while the AST is borrowed.
fn addr<T>(node: &T) -> usize {
    node as *const T as usize
}

/// Unquoted: ASCII lower-cased, as PostgreSQL folds it. Quoted: verbatim.
fn ident_name(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// Not a column: unquoted `DEFAULT` (in VALUES) and MySQL `@variables`.
fn is_column_ident(id: &Ident) -> bool {
    id.quote_style.is_some()
        || !(id.value.starts_with('@') || id.value.eq_ignore_ascii_case("default"))
}

/// Whether an `EXPLAIN` runs its statement: ANALYZE, or an `(ANALYZE x)`
/// option unless `x` is the word FALSE/OFF (a literal is read as on, as the
/// keyword classifier does: the fingerprint cannot tell `0` from `1`).
fn explain_runs(analyze: bool, options: Option<&[UtilityOption]>) -> bool {
    analyze
        || options.unwrap_or(&[]).iter().any(|o| {
            let name = &o.name.value;
            let is_analyze =
                name.eq_ignore_ascii_case("analyze") || name.eq_ignore_ascii_case("analyse");
            let off = match &o.arg {
                Some(Expr::Value(v)) => matches!(v.value, Value::Boolean(false)),
                Some(Expr::Identifier(id)) => {
                    id.value.eq_ignore_ascii_case("off") || id.value.eq_ignore_ascii_case("false")
                }
                _ => false,
            };
            is_analyze && !off
        })
}

fn function_args(f: &Function) -> impl Iterator<Item = &FunctionArgExpr> {
    let args = match &f.args {
        FunctionArguments::List(list) => list.args.as_slice(),
        _ => &[],
    };
    args.iter().map(|a| match a {
        FunctionArg::Named { arg, .. }
        | FunctionArg::ExprNamed { arg, .. }
        | FunctionArg::Unnamed(arg) => arg,
    })
}

/// `expr` without enclosing parentheses.
fn strip_nested(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// Whether `expr`, an operand of OR, makes the OR always true (or at least
/// independent of the row): a comparison of constants, or a bare constant.
/// A null test of a constant is not one: ORMs emit `(? IS NULL OR col = ?)`
/// for optional filters. A nested OR is judged at its own node.
fn tautology_operand(expr: &Expr) -> bool {
    let e = strip_nested(expr);
    if matches!(
        e,
        Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        }
    ) || is_null_test(e)
    {
        return false;
    }
    is_const(e)
}

/// `x IS [NOT] NULL` / `IS [NOT] UNKNOWN`, possibly negated or parenthesised.
fn is_null_test(mut e: &Expr) -> bool {
    loop {
        match e {
            Expr::Nested(inner)
            | Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: inner,
            } => e = inner,
            Expr::IsNull(_) | Expr::IsNotNull(_) | Expr::IsUnknown(_) | Expr::IsNotUnknown(_) => {
                return true
            }
            _ => return false,
        }
    }
}

/// Whether `expr` is built from constants only: literals (and `?`
/// parameters, which the skeleton shows as literals), casts, parentheses,
/// operators, comparisons, LIKE/IN/BETWEEN/IS tests, CASE and calls of
/// functions whose arguments are all constants. Columns, subqueries and
/// window functions are not. Iterative: sqlparser builds operator chains
/// (`1+1+…+1`) without a depth limit.
fn is_const(expr: &Expr) -> bool {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Value(_) | Expr::TypedString(_) => {}
            Expr::Interval(i) => stack.push(&i.value),
            Expr::Nested(x)
            | Expr::UnaryOp { expr: x, .. }
            | Expr::Cast { expr: x, .. }
            | Expr::Collate { expr: x, .. }
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x)
            | Expr::Extract { expr: x, .. }
            | Expr::Ceil { expr: x, .. }
            | Expr::Floor { expr: x, .. } => stack.push(x),
            Expr::BinaryOp { left, right, .. }
            | Expr::AnyOp { left, right, .. }
            | Expr::AllOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right)
            | Expr::AtTimeZone {
                timestamp: left,
                time_zone: right,
            } => {
                stack.push(left);
                stack.push(right);
            }
            Expr::Like {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::SimilarTo {
                expr,
                pattern,
                escape_char,
                ..
            } => {
                stack.push(expr);
                stack.push(pattern);
                stack.extend(escape_char.as_deref());
            }
            Expr::RLike { expr, pattern, .. } => {
                stack.push(expr);
                stack.push(pattern);
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                ..
            } => {
                stack.push(expr);
                stack.extend(list);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                stack.push(expr);
                stack.push(low);
                stack.push(high);
            }
            Expr::Tuple(items) => stack.extend(items),
            Expr::Array(a) => stack.extend(&a.elem),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                stack.extend(operand.as_deref());
                for c in conditions {
                    stack.push(&c.condition);
                    stack.push(&c.result);
                }
                stack.extend(else_result.as_deref());
            }
            Expr::Function(f) => {
                if f.over.is_some() || f.filter.is_some() {
                    return false;
                }
                match &f.args {
                    FunctionArguments::None => {}
                    FunctionArguments::Subquery(_) => return false,
                    FunctionArguments::List(list) => {
                        for a in function_args(f) {
                            match a {
                                FunctionArgExpr::Expr(x) => stack.push(x),
                                _ => return false,
                            }
                        }
                        if !list.clauses.is_empty() {
                            return false;
                        }
                    }
                }
            }
            _ => return false,
        }
    }
    true
}

/// Whether `expr` names a column anywhere (subqueries included: whether a
/// reference there is correlated is not known, so it counts).
fn references_column(expr: &Expr) -> bool {
    visit_expressions(expr, |e| match e {
        Expr::Identifier(id) if is_column_ident(id) => ControlFlow::Break(()),
        Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether an UPDATE/DELETE with this WHERE may touch every row: no WHERE,
/// a WHERE that names no column (`1=1`, `true`, `? = ?`, `random() < ?`,
/// `EXISTS (SELECT 1)`), or a top-level OR branch that names none
/// (`id = ? OR 1=1`, also `id = ? OR ? IS NULL`: a write is no place for
/// that ORM idiom). In MySQL, a `|| <constant>` anywhere counts too (see
/// [`ShapeCollector::expr`]).
fn unbounded(selection: Option<&Expr>, dialect: Dialect) -> bool {
    let Some(w) = selection else {
        return true;
    };
    let mut stack = vec![w];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Nested(x) => stack.push(x),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => {
                stack.push(left);
                stack.push(right);
            }
            other if !references_column(other) => return true,
            _ => {}
        }
    }
    dialect == Dialect::MySql
        && visit_expressions(w, |e| match e {
            Expr::BinaryOp {
                op: BinaryOperator::StringConcat,
                right,
                ..
            } if tautology_operand(right) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .is_break()
}

/// Whether the query (or the parenthesised query it wraps) has a real row
/// limit: `LIMIT n`, MySQL `LIMIT o, n`, `FETCH FIRST [n] ROWS`; not
/// `LIMIT ALL` (no limit clause), `LIMIT NULL` or `FETCH … PERCENT`.
fn query_limited(mut q: &Query) -> bool {
    loop {
        let limit = match &q.limit_clause {
            Some(LimitClause::LimitOffset { limit: Some(l), .. })
            | Some(LimitClause::OffsetCommaLimit { limit: l, .. }) => !is_null(l),
            _ => false,
        };
        let fetch = q
            .fetch
            .as_ref()
            .is_some_and(|f| !f.percent && !f.quantity.as_ref().is_some_and(is_null));
        if limit || fetch {
            return true;
        }
        match &*q.body {
            SetExpr::Query(inner) => q = inner,
            _ => return false,
        }
    }
}

fn is_null(e: &Expr) -> bool {
    matches!(strip_nested(e), Expr::Value(v) if v.value == Value::Null)
}

/// Whether a UNION branch after the first looks like extraction: no FROM,
/// a projection of constants only, or a system-catalog source.
fn union_branch_suspicious(branch: &SetExpr, dialect: Dialect) -> bool {
    let mut stack = vec![branch];
    while let Some(e) = stack.pop() {
        match e {
            SetExpr::Select(s) => {
                let constant = s.projection.iter().all(|item| match item {
                    SelectItem::UnnamedExpr(x)
                    | SelectItem::ExprWithAlias { expr: x, .. }
                    | SelectItem::ExprWithAliases { expr: x, .. } => is_const(x),
                    _ => false,
                });
                if s.from.is_empty() || constant || reads_catalog(s, dialect) {
                    return true;
                }
            }
            SetExpr::Values(_) => return true,
            SetExpr::Table(t) => {
                let name = match (&t.schema_name, &t.table_name) {
                    (Some(s), Some(n)) => format!("{}.{}", ident_name(s), ident_name(n)),
                    (None, Some(n)) => ident_name(n),
                    _ => continue,
                };
                if !catalog_signal(&name, dialect).is_empty() {
                    return true;
                }
            }
            SetExpr::Query(q) => stack.push(&q.body),
            SetExpr::SetOperation { left, right, .. } => {
                stack.push(left);
                stack.push(right);
            }
            _ => {}
        }
    }
    false
}

fn reads_catalog(select: &Select, dialect: Dialect) -> bool {
    visit_relations(select, |name| {
        if catalog_signal(&object_name(name), dialect).is_empty() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    })
    .is_break()
}

fn object_name(name: &ObjectName) -> String {
    let mut out = String::new();
    for (i, part) in name.0.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if let Some(ident) = part.as_ident() {
            out.push_str(&ident_name(ident));
        }
    }
    out
}

/// A whole-row reference in the select list: `SELECT u FROM users u`,
/// `SELECT row_to_json(u) FROM users u` (PostgreSQL), which reads every
/// column as `u.*` does. A bare name in the projection (or a direct
/// argument of a call there) that is the alias or name of a relation or
/// subquery of this SELECT counts; table functions do not (`SELECT g FROM
/// generate_series(1, 3) g` is a scalar).
fn whole_row_reference(s: &Select) -> bool {
    let mut sources: Vec<String> = Vec::new();
    let mut factors: Vec<&TableFactor> = Vec::new();
    for twj in &s.from {
        factors.push(&twj.relation);
        factors.extend(twj.joins.iter().map(|j| &j.relation));
    }
    while let Some(f) = factors.pop() {
        match f {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => match alias {
                Some(a) => sources.push(ident_name(&a.name)),
                None => {
                    if let Some(id) = name.0.last().and_then(|p| p.as_ident()) {
                        sources.push(ident_name(id));
                    }
                }
            },
            TableFactor::Derived { alias: Some(a), .. } => sources.push(ident_name(&a.name)),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                factors.push(&table_with_joins.relation);
                factors.extend(table_with_joins.joins.iter().map(|j| &j.relation));
            }
            _ => {}
        }
    }
    if sources.is_empty() {
        return false;
    }
    let names_source = |e: &Expr| {
        let mut e = strip_nested(e);
        while let Expr::Cast { expr, .. } = e {
            e = strip_nested(expr);
        }
        matches!(e, Expr::Identifier(id) if is_column_ident(id) && sources.contains(&ident_name(id)))
    };
    s.projection.iter().any(|item| {
        let expr = match item {
            SelectItem::UnnamedExpr(x)
            | SelectItem::ExprWithAlias { expr: x, .. }
            | SelectItem::ExprWithAliases { expr: x, .. } => x,
            _ => return false,
        };
        if names_source(expr) {
            return true;
        }
        match strip_nested(expr) {
            Expr::Function(f) => function_args(f).any(|a| match a {
                FunctionArgExpr::Expr(x) => names_source(x),
                _ => false,
            }),
            _ => false,
        }
    })
}

// ---------------------------------------------------------------------------
// From tokens
// ---------------------------------------------------------------------------

/// Signals and `*` reads visible in the keywords alone, whether or not the
/// statement parsed: `COPY … FROM/TO 'file' | PROGRAM`, `COPY t TO` without
/// a column list, `LOAD DATA [LOCAL] INFILE` / `LOAD XML` (MySQL),
/// PostgreSQL `LOAD 'library'` (reads and runs a server file), and MySQL
/// `INTO OUTFILE/DUMPFILE`. `toks` are the significant tokens.
pub(crate) fn token_shape(toks: &[Token<'_>], dialect: Dialect, shape: &mut Shape) {
    if is_word(toks, 0, "copy") {
        let mut i = 1;
        if is_word(toks, i, "binary") {
            i += 1;
        }
        let mut whole_table = false;
        if kind_at(toks, i) == Some(TokenKind::LParen) {
            i = skip_group(toks, i);
        } else {
            i = skip_name(toks, i);
            whole_table = true;
            if kind_at(toks, i) == Some(TokenKind::LParen) {
                i = skip_group(toks, i);
                whole_table = false;
            }
        }
        let to = is_word(toks, i, "to");
        if to || is_word(toks, i, "from") {
            if to && whole_table {
                shape.select_star = true;
            }
            let target = i + 1;
            if is_word(toks, target, "program") {
                shape.signals.insert(Signals::PROGRAM_EXEC);
            } else if !(is_word(toks, target, "stdin") || is_word(toks, target, "stdout"))
                && target < toks.len()
            {
                shape.signals.insert(Signals::FILE_ACCESS);
            }
        }
    }
    if is_word(toks, 0, "load") {
        match dialect {
            Dialect::MySql if is_word(toks, 1, "data") || is_word(toks, 1, "xml") => {
                shape.signals.insert(Signals::FILE_ACCESS);
            }
            Dialect::Postgres => shape.signals.insert(Signals::FILE_ACCESS),
            Dialect::MySql => {}
        }
    }
    if dialect == Dialect::MySql && writes_server_file(toks) {
        shape.signals.insert(Signals::FILE_ACCESS);
    }
}

/// PostgreSQL's reserved key words (and the "can be function or type"
/// ones), plus statement and option words the fallback meets often: none
/// can be an unquoted column name where the keyword scan sees them.
const NOT_COLUMN_WORDS: &[&str] = &[
    // reserved
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
    // reserved, can be function or type
    "authorization",
    "binary",
    "collation",
    "concurrently",
    "cross",
    "current_schema",
    "freeze",
    "full",
    "ilike",
    "inner",
    "is",
    "isnull",
    "join",
    "left",
    "like",
    "natural",
    "notnull",
    "outer",
    "overlaps",
    "right",
    "similar",
    "tablesample",
    "verbose",
    // statement and option words
    "insert",
    "update",
    "delete",
    "merge",
    "set",
    "values",
    "between",
    "exists",
    "operator",
    "explain",
    "vacuum",
    "cluster",
    "reindex",
    "lock",
    "copy",
    "program",
    "stdin",
    "stdout",
    "truncate",
    "refresh",
    "materialized",
    "view",
    "index",
    "nulls",
    "first",
    "last",
    "rows",
    "row",
    "next",
    "by",
    "interval",
    "mode",
    "share",
    "exclusive",
    "access",
    "nowait",
    "cascade",
    "restrict",
    "if",
    "csv",
    "header",
    "format",
    "delimiter",
    "escape",
    "without",
    "zone",
    "time",
    "timestamp",
    "date",
    "begin",
    "commit",
    "rollback",
    "language",
    "returns",
    "replace",
    "function",
    "procedure",
    "trigger",
    "execute",
    "perform",
    "declare",
    "cursor",
    "show",
    "describe",
    "load",
    "infile",
    "outfile",
    "dumpfile",
    "local",
    "ignore",
    "duplicate",
    "key",
    "div",
    "mod",
    "xor",
    "regexp",
    "rlike",
    "straight_join",
    "ties",
    "percent",
    "skip",
    "locked",
    "of",
    "current",
    "recursive",
    "no",
];

/// Best-effort shape of a statement sqlparser rejected, from its tokens:
/// - columns: every unquoted non-keyword word or quoted identifier that is
///   not a relation or its alias (`relation_tokens`), not called or
///   qualified (followed by `(` or `.`), not a type or alias (after `::` or
///   `AS`). It over-reports rather than misses.
/// - select_star: a `*` right after SELECT/DISTINCT/ALL/RETURNING/`,`/`.`,
///   or a leading `TABLE t`.
/// - limited: a depth-0 `LIMIT` (not ALL/NULL) or `FETCH` in a query
///   statement (one that starts with SELECT/WITH/VALUES/TABLE/`(`).
/// - unbounded_write: an UPDATE/DELETE with no WHERE at its own nesting
///   depth. A WHERE keyword is taken as a bound, even `WHERE 1=1`: without
///   a parse its condition cannot be judged.
/// - TAUTOLOGY: an `OR` (MySQL also `||`) followed by a run of constants
///   (literals, TRUE/FALSE/NULL, operators, casts, parentheses) that is not
///   a null test.
/// - UNION_SELECT: a `UNION [ALL] SELECT` branch without FROM or with a
///   constant projection, or any UNION in a statement that reads a catalog.
pub(crate) fn scan_shape(
    toks: &[Token<'_>],
    relation_tokens: &[bool],
    dialect: Dialect,
    operation: Operation,
    tables: &[String],
) -> Shape {
    let mut shape = Shape::default();
    let mut depth = 0usize;
    let mut has_union = false;
    // A query statement (not `DECLARE c CURSOR FOR …`, also a Select).
    let query = operation == Operation::Select
        && (kind_at(toks, 0) == Some(TokenKind::LParen)
            || ["select", "with", "values", "table"]
                .iter()
                .any(|w| is_word(toks, 0, w)));
    for (i, t) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| toks.get(p));
        let next = toks.get(i + 1);
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => depth = depth.saturating_sub(1),
            TokenKind::Operator if t.text == "*" => {
                let after_list_start = prev.is_some_and(|p| {
                    matches!(p.kind, TokenKind::Comma | TokenKind::Dot)
                        || ["select", "distinct", "all", "returning"]
                            .iter()
                            .any(|w| p.is_word(w))
                });
                if after_list_start {
                    shape.select_star = true;
                }
            }
            TokenKind::Operator | TokenKind::Word
                if (t.is_word("or") || (t.text == "||" && dialect == Dialect::MySql))
                    && constant_run(toks, i + 1) =>
            {
                shape.signals.insert(Signals::TAUTOLOGY);
            }
            TokenKind::Word if t.is_word("union") => {
                has_union = true;
                if union_scan_suspicious(toks, i) {
                    shape.signals.insert(Signals::UNION_SELECT);
                }
            }
            TokenKind::Word
                if depth == 0
                    && query
                    && ((t.is_word("limit")
                        && !next.is_some_and(|n| n.is_word("all") || n.is_word("null")))
                        || (t.is_word("fetch") && i > 0)) =>
            {
                shape.limited = true;
            }
            _ => {}
        }
        let candidate = match t.kind {
            TokenKind::Word => {
                let lower = t.text.to_ascii_lowercase();
                i > 0 && !NOT_COLUMN_WORDS.contains(&lower.as_str()) && !t.text.starts_with('@')
            }
            TokenKind::QuotedIdent => true,
            _ => false,
        };
        // Relations and aliases; calls and qualifiers; types and aliases;
        // `CURRENT OF cursor`; MySQL `@var` / `@@var`; the DATA / XML of
        // MySQL `LOAD DATA` / `LOAD XML`.
        let excluded = relation_tokens.get(i) == Some(&true)
            || (i == 1 && dialect == Dialect::MySql && is_word(toks, 0, "load"))
            || next.is_some_and(|n| matches!(n.kind, TokenKind::LParen | TokenKind::Dot))
            || prev.is_some_and(|p| {
                p.kind == TokenKind::Cast
                    || p.is_word("as")
                    || p.is_word("of")
                    || (p.kind == TokenKind::Operator && p.text.starts_with('@'))
            });
        if candidate && !excluded {
            shape.columns.push(token_name(std::slice::from_ref(t)));
        }
    }
    if is_word(toks, 0, "table") {
        shape.select_star = true;
    }
    if matches!(operation, Operation::Update | Operation::Delete) {
        shape.unbounded_write = !write_has_where(toks);
    }
    if has_union
        && tables
            .iter()
            .any(|t| !catalog_signal(t, dialect).is_empty())
    {
        shape.signals.insert(Signals::UNION_SELECT);
    }
    shape
}

/// Whether the UPDATE/DELETE that the statement runs has a WHERE at its own
/// depth. Its verb is the first `update`/`delete` word at statement
/// position (first token, or after `(`, `)` or EXPLAIN's words: not `FOR
/// UPDATE`, `ON DELETE`, `DO UPDATE`, `THEN UPDATE`); without one, any
/// depth-0 WHERE counts.
fn write_has_where(toks: &[Token<'_>]) -> bool {
    let mut depth = 0usize;
    let mut verb: Option<(usize, usize)> = None;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => depth = depth.saturating_sub(1),
            TokenKind::Word if t.is_word("update") || t.is_word("delete") => {
                let at_start = match i.checked_sub(1).and_then(|p| toks.get(p)) {
                    None => true,
                    Some(p) => {
                        matches!(p.kind, TokenKind::LParen | TokenKind::RParen)
                            || ["explain", "analyze", "analyse", "verbose"]
                                .iter()
                                .any(|w| p.is_word(w))
                    }
                };
                if at_start {
                    verb = Some((i, depth));
                    break;
                }
            }
            _ => {}
        }
    }
    let (start, want) = verb.unwrap_or((0, 0));
    let mut depth = want;
    for t in toks.iter().skip(start + 1) {
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => {
                if depth == want {
                    return false;
                }
                depth -= 1;
            }
            TokenKind::Word if depth == want && t.is_word("where") => return true,
            _ => {}
        }
    }
    false
}

/// Words that may appear in a run of constants after OR.
const CONSTANT_RUN_WORDS: &[&str] = &[
    "true", "false", "null", "not", "like", "ilike", "similar", "between", "in", "is", "distinct",
    "escape", "unknown", "regexp", "rlike", "sounds", "div", "mod", "xor",
];
/// Words that end the run (a clause of the enclosing statement begins).
const RUN_END_WORDS: &[&str] = &[
    "or",
    "order",
    "group",
    "limit",
    "union",
    "having",
    "returning",
    "offset",
    "fetch",
    "for",
    "window",
    "intersect",
    "except",
    "then",
    "when",
    "else",
    "end",
    "into",
    "on",
    "using",
    "join",
    "where",
    "select",
];

/// Whether the tokens from `start` up to the end of the OR operand are a
/// non-empty run of constants and not a null test.
fn constant_run(toks: &[Token<'_>], start: usize) -> bool {
    let mut depth = 0usize;
    let mut between = false;
    let mut seen = false;
    let mut i = start;
    while let Some(t) = toks.get(i) {
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            TokenKind::Comma if depth == 0 => break,
            TokenKind::Comma | TokenKind::LBracket | TokenKind::RBracket => {}
            TokenKind::String | TokenKind::Number | TokenKind::Param => seen = true,
            TokenKind::Operator | TokenKind::Other => {
                if t.text == "||" && depth == 0 {
                    break;
                }
            }
            TokenKind::Cast => {
                // The type name after `::` (`'1'::int`, `?::text[]`).
                i += 1;
            }
            TokenKind::Word if t.is_word("and") => {
                if depth == 0 && !between {
                    break;
                }
                between = false;
            }
            TokenKind::Word if t.is_word("from") => {
                // Only `IS [NOT] DISTINCT FROM`.
                if !(i > start && is_word(toks, i - 1, "distinct")) {
                    break;
                }
            }
            TokenKind::Word if depth == 0 && RUN_END_WORDS.iter().any(|w| t.is_word(w)) => break,
            TokenKind::Word if CONSTANT_RUN_WORDS.iter().any(|w| t.is_word(w)) => {
                if t.is_word("between") {
                    between = true;
                }
                if ["true", "false", "null"].iter().any(|w| t.is_word(w)) {
                    seen = true;
                }
                if t.is_word("null")
                    && (is_word(toks, i.wrapping_sub(1), "is")
                        || (is_word(toks, i.wrapping_sub(1), "not")
                            && is_word(toks, i.wrapping_sub(2), "is")))
                {
                    return false;
                }
            }
            TokenKind::Word if t.is_word("isnull") || t.is_word("notnull") => return false,
            _ => return false,
        }
        i += 1;
    }
    seen
}

/// Whether the UNION at `at` starts a branch with no FROM or with a
/// projection of constants only.
fn union_scan_suspicious(toks: &[Token<'_>], at: usize) -> bool {
    let mut i = at + 1;
    while is_word(toks, i, "all") || is_word(toks, i, "distinct") {
        i += 1;
    }
    while kind_at(toks, i) == Some(TokenKind::LParen) {
        i += 1;
    }
    if !is_word(toks, i, "select") {
        return false;
    }
    i += 1;
    let mut depth = 0usize;
    let mut constant = true;
    while let Some(t) = toks.get(i) {
        match t.kind {
            TokenKind::LParen => depth += 1,
            TokenKind::RParen => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            TokenKind::Word if depth == 0 && t.is_word("from") => return constant,
            TokenKind::Word
                if depth == 0
                    && [
                        "union", "into", "order", "limit", "where", "group", "having",
                    ]
                    .iter()
                    .any(|w| t.is_word(w)) =>
            {
                break
            }
            TokenKind::String
            | TokenKind::Number
            | TokenKind::Param
            | TokenKind::Comma
            | TokenKind::Operator
            | TokenKind::Cast => {}
            TokenKind::Word
                if ["null", "true", "false", "distinct", "all"]
                    .iter()
                    .any(|w| t.is_word(w)) => {}
            // A type name after `::`.
            TokenKind::Word if i > 0 && kind_at(toks, i - 1) == Some(TokenKind::Cast) => {}
            _ => constant = false,
        }
        i += 1;
    }
    // No FROM before the branch ended.
    true
}

#[cfg(test)]
mod tests {
    //! Table-driven: each case names the statement and every shape fact
    //! it must have; a fact not named must be absent.
    use crate::facts::{analyze, StatementFacts};
    use crate::lexer::test_options::{MY, PG};
    use crate::lexer::LexOptions;
    use crate::signals::Signals;

    /// `want` is space-separated: `*` (select_star), `unbounded`,
    /// `limited`, signal names, `c:a,b` (exact sorted columns; unchecked
    /// when absent), `!parse` (sqlparser rejects it, so the keyword scan
    /// answers; without it the statement must parse), `@N` (check
    /// statement N of several; else the input must be one statement).
    fn check(sql: &str, opts: LexOptions, want: &str) -> Result<(), String> {
        let facts = analyze(sql, opts);
        let mut index = None;
        let mut star = false;
        let mut unbounded = false;
        let mut limited = false;
        let mut signals = Signals::empty();
        let mut columns = None;
        let mut parse_error = false;
        for w in want.split_whitespace() {
            match w {
                "*" => star = true,
                "unbounded" => unbounded = true,
                "limited" => limited = true,
                "!parse" => parse_error = true,
                _ if w.starts_with('@') => index = w[1..].parse::<usize>().ok(),
                _ if w.starts_with("c:") => {
                    columns = Some(
                        w[2..]
                            .split(',')
                            .filter(|c| !c.is_empty())
                            .map(str::to_string)
                            .collect::<Vec<_>>(),
                    )
                }
                _ => match Signals::from_name(w) {
                    Some(s) => signals.insert(s),
                    None => return Err(format!("bad expectation {w:?}")),
                },
            }
        }
        let f: &StatementFacts = match index {
            Some(i) => facts.get(i).ok_or("no such statement")?,
            None if facts.len() == 1 => &facts[0],
            None => return Err(format!("{} statements", facts.len())),
        };
        let mut bad = Vec::new();
        if f.select_star != star {
            bad.push(format!("select_star {}", f.select_star));
        }
        if f.unbounded_write != unbounded {
            bad.push(format!("unbounded_write {}", f.unbounded_write));
        }
        if f.limited != limited {
            bad.push(format!("limited {}", f.limited));
        }
        if f.signals != signals {
            bad.push(format!("signals {:?}", f.signals));
        }
        if let Some(c) = columns {
            if f.columns != c {
                bad.push(format!("columns {:?}", f.columns));
            }
        }
        if f.parse_error.is_some() != parse_error {
            bad.push(format!("parse_error {:?}", f.parse_error));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} (normalized {:?}, parse_error {:?})",
                bad.join(", "),
                f.normalized,
                f.parse_error
            ))
        }
    }

    fn run(cases: &[(&str, &str)], opts: LexOptions) -> usize {
        let mut failures = Vec::new();
        for (sql, want) in cases {
            if let Err(e) = check(sql, opts, want) {
                failures.push(format!("{sql:?}\n    want {want:?}\n    got  {e}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        cases.len()
    }

    /// PostgreSQL: tautologies, benign look-alikes included.
    #[rustfmt::skip]
    const TAUTOLOGY: &[(&str, &str)] = &[
        ("select * from users where name = '' or '1'='1' --'", "* tautology comment_truncation c:name"),
        ("select * from users where name = 'admin' or 1=1", "* tautology"),
        ("select * from users where id = 1 or 1=1", "* tautology c:id"),
        ("select a from t where a = 1 or 'a'='a'", "tautology c:a"),
        ("select a from t where a = 1 or 2>1", "tautology"),
        ("select a from t where a = 1 or true", "tautology"),
        ("select a from t where a = 1 or 1", "tautology"),
        ("select a from t where a = 1 or not false", "tautology"),
        ("select a from t where a = $1 or $2 = $3", "tautology"),
        ("select a from t where a = 1 or 'x' like 'x'", "tautology"),
        ("select a from t where a = 1 or 'x' ilike '%'", "tautology"),
        ("select a from t where a = 1 or 'x' not like 'y'", "tautology"),
        ("select a from t where a = 1 or 'x' similar to 'x'", "tautology"),
        ("select a from t where a = 1 or 1 in (1, 2)", "tautology"),
        ("select a from t where a = 1 or 1 between 0 and 2", "tautology"),
        ("select a from t where a = 1 or 1 is not distinct from 1", "tautology"),
        ("select a from t where a = 1 or 1 is distinct from 2", "tautology"),
        ("select a from t where a = 1 or 1 <> 2", "tautology"),
        ("select a from t where a = 1 or 1 != 2", "tautology"),
        ("select a from t where a = 1 or 2 >= 1", "tautology"),
        ("select a from t where a = 1 or 1 <= 2", "tautology"),
        ("select a from t where a = 1 or 1 < 2", "tautology"),
        ("select a from t where a = 1 or '1'::int = 1", "tautology"),
        ("select a from t where a = 1 or cast('1' as int) = 1", "tautology"),
        ("select a from t where a = 1 or (1 = 1)", "tautology"),
        ("select a from t where a = 1 or ((1) = (1))", "tautology"),
        ("select a from t where a = 1 or 1 + 1 = 2", "tautology"),
        ("select a from t where a = 1 or 'a' || 'b' = 'ab'", "tautology"),
        ("select a from t where a = 1 or -1 = -1", "tautology"),
        ("select a from t where a = 1 or 1 = any(array[1, 2])", "tautology"),
        ("select a from t where a = 1 or 'a' ~ 'a'", "tautology"),
        ("select a from t where a = 1 or lower('A') = 'a'", "tautology"),
        ("select a from t where a = 1 or date '2020-01-01' < now()", "tautology"),
        ("select a from t where a = 1 or null is null or 1 = 1", "tautology"),
        ("select a from t where (a = 1 or 1=1) and b = 2", "tautology c:a,b"),
        ("select a from t where 1=1 or a = 1", "tautology"),
        ("select a from t where a = 1 or b = 2 or 1=1", "tautology c:a,b"),
        ("select a from t where not (a = 1) or 1=1", "tautology"),
        ("select a from t where a = 1 or (b = 2 or 'x' = 'x')", "tautology"),
        ("select t1.a from t t1 join u on t1.id = u.id or 1=1", "tautology c:a,id"),
        ("select a, count(*) from t group by a having count(*) > 1 or 1=1", "tautology c:a"),
        ("select a from t where a in (select b from u where b = 1 or 1=1)", "tautology c:a,b"),
        ("select a from t where exists (select 1 from u where u.x = t.x or 'a'='a')", "tautology c:a,x"),
        ("select * from users where name = '' or 'x'='x' limit 1", "* tautology limited"),
        ("with x as (select a from t where a = 1 or 1=1) select * from x", "* tautology"),
        ("select a from t where a = 1 or 1=1 -- ", "tautology comment_truncation"),
        ("update t set a = 1 where id = 1 or 1=1", "tautology unbounded c:a,id"),
        ("delete from t where id = 1 or 1=1", "tautology unbounded c:id"),
        ("delete from t where id = 1 or true", "tautology unbounded"),
        ("select a from t where a = 1 or 1 = 1 for update", "tautology"),
        ("SELECT A FROM T WHERE A = 1 OR 1 = 1", "tautology c:a"),
        ("select a from t where a = 1 or $1 = $2", "tautology"),
        ("select a from t where a = 1 or (1 = 1) is true", "tautology"),
        ("select a from t where a = 1 or 1 = 1 and 2 = 2", "tautology"),
        ("select a from t where a = 1 or case when 1 = 1 then true end", "tautology"),
        // benign look-alikes
        ("select a from t where a = $1 or b = $2", "c:a,b"),
        ("select a from t where ($1 is null or a = $2)", "c:a"),
        ("select a from t where (a = $1 or $2 is null)", "c:a"),
        ("select a from t where ($1 is not null or a = $2)", "c:a"),
        ("select a from t where (not $1 is null or a = $2)", "c:a"),
        ("select a from t where ($1::text is null or a = $1) and ($2::int is null or b = $2)", "c:a,b"),
        ("select a from t where a is null or b = 1", "c:a,b"),
        ("select a from t where 1=1 and a = $1", "c:a"),
        ("select a from t where 1=1", "c:a"),
        ("select a from t where true", "c:a"),
        ("select count(*) from t", "c:"),
        ("select a from t where a = 1 or a = 2", "c:a"),
        ("select a from t where a = 1 or b in (1, 2)", "c:a,b"),
        ("select a from t where a = 1 or b between 1 and 2", "c:a,b"),
        ("select a from t where a = 1 or b like 'x%'", "c:a,b"),
        ("select a from t where a = 1 or b is distinct from 2", "c:a,b"),
        ("select a from t where a = 1 or exists (select 1 from u where u.a = t.a)", "c:a"),
        ("select a from t where a = 1 or f(b) = 1", "c:a,b"),
        ("select a from t where a = 1 or (b = 2 and 1 = 1)", "c:a,b"),
        ("select a from t where a = 1 or not b", "c:a,b"),
        ("select a from t where a = 1 or (select count(*) from u) > 0", "c:a"),
        ("select a from t where coalesce(a, 0) = 1 or b = 2", "c:a,b"),
        ("select case when a = 1 or b = 2 then 1 end from t", "c:a,b"),
        ("select a from t where a = 1 and 1 = 1", "c:a"),
        ("select a from t where a = 1 and (b = 2 or c = 3)", "c:a,b,c"),
        ("select a from t where a = 1 or b = current_user", "c:a,b"),
        ("select a from t where a = 1 or row_number() over () = 1", "c:a"),
    ];

    /// PostgreSQL: UNION-based extraction.
    #[rustfmt::skip]
    const UNION: &[(&str, &str)] = &[
        ("select a from t where id = 1 union select null, usename, passwd from pg_shadow--", "union_select catalog_secret comment_truncation c:a,id,passwd,usename"),
        ("select name from users where id = '' union select null, usename, passwd from pg_shadow--'", "union_select catalog_secret comment_truncation"),
        ("select a from t union select 1", "union_select"),
        ("select a from t union all select null", "union_select"),
        ("select a from t union select null, null from u", "union_select"),
        ("select a from t union select 'x' from dual", "union_select"),
        ("select a from t union select version()", "union_select"),
        ("select a from t union select current_user", "union_select"),
        ("select a from t union select table_name from information_schema.tables", "union_select catalog_probe"),
        ("select a from t union select relname from pg_class", "union_select catalog_probe"),
        ("select a from t union select rolpassword from pg_authid", "union_select catalog_secret"),
        ("select a from t union select usename from pg_catalog.pg_user", "union_select catalog_probe"),
        ("select a from t union (select 1)", "union_select"),
        ("select a from t union values (1)", "union_select"),
        ("select a from t union all select a from u union select 1", "union_select"),
        ("select a from t where b in (select c from u union select 1)", "union_select"),
        ("select a from t union select b from (select * from pg_shadow) s", "* union_select catalog_secret"),
        ("select a from t union table pg_shadow", "* union_select catalog_secret"),
        ("select a from t union select 1::text from u", "union_select"),
        ("select a from t union select 'a' || 'b', 2 + 3 from u", "union_select"),
        ("select a from t where a = '' union select string_agg(usename, ',') from pg_user--", "union_select catalog_probe comment_truncation"),
        ("(select a from t) union (select null)", "union_select"),
        ("select a from t union distinct select null", "union_select"),
        // benign
        ("select a from t union select b from u", "c:a,b"),
        ("select a from t union all select b from u where b > 1", "c:a,b"),
        ("select a, 'x' from t union all select b, 'y' from u", "c:a,b"),
        ("select a from t intersect select 1", "c:a"),
        ("select a from t except select null", "c:a"),
        ("select 1 union select a from t", "c:a"),
        ("select a from t union select count(*) from u", "c:a"),
        ("select relname from pg_class", "catalog_probe c:relname"),
    ];

    /// PostgreSQL: trailing comments.
    #[rustfmt::skip]
    const TRUNCATION: &[(&str, &str)] = &[
        ("select * from users where name = 'admin'--", "* comment_truncation"),
        ("select * from users where name = 'admin'-- x", "* comment_truncation"),
        ("select * from users where name = 'admin' -- comment\n", "*"),
        ("select * from users where name = 'admin' -- comment\r\n", "*"),
        ("select 1 /* closed */", "c:"),
        ("select 1 /* closed */ ", "c:"),
        ("select 1 /* unterminated", "comment_truncation"),
        ("select 1 /* a /* nested */ still open", "comment_truncation"),
        ("select 1; -- note", "c:"),
        ("select 1 -- a\n-- b", "comment_truncation"),
        ("select 1 -- a\n-- b\n", "c:"),
        ("/* tag */ select 1", "c:"),
        ("-- leading\nselect 1", "c:"),
        ("select 1 -- x\n; select 2", "@0"),
        ("select 1 -- x\n; select 2", "@1"),
        ("select 1; select 2 --", "@0"),
        ("select 1; select 2 --", "@1 comment_truncation"),
        ("select 1 --; select 2", "comment_truncation"),
        ("update users set admin = true where name = 'x'--' and pw = 'y'", "comment_truncation c:admin,name"),
    ];

    /// PostgreSQL: dangerous functions, files, programs, network, catalogs.
    #[rustfmt::skip]
    const FUNCTIONS_AND_CATALOGS: &[(&str, &str)] = &[
        ("select pg_sleep(5)", "time_delay"),
        ("select 1; select pg_sleep(5)", "@1 time_delay"),
        ("select a from users where id = 1; select pg_sleep(5)--", "@1 time_delay comment_truncation"),
        ("select * from t where id = 1 and 1=(select 1 from pg_sleep(5))", "* time_delay c:id"),
        ("select pg_catalog.pg_sleep(1)", "time_delay"),
        ("select pg_sleep_for('5 seconds')", "time_delay"),
        ("select pg_sleep_until(now() + interval '5 s')", "time_delay"),
        ("select case when (select count(*) from users) > 0 then pg_sleep(5) end", "time_delay"),
        ("select \"pg_sleep\"(1)", "time_delay"),
        ("select \"PG_SLEEP\"(1)", ""),
        ("do $$ begin perform pg_sleep(1); end $$", "!parse"),
        ("select pg_read_file('/etc/passwd')", "file_access"),
        ("select pg_read_binary_file('x')", "file_access"),
        ("select pg_ls_dir('.')", "file_access"),
        ("select pg_stat_file('x')", "file_access"),
        ("select lo_import('/etc/passwd')", "file_access"),
        ("select lo_export(1, '/tmp/x')", "file_access"),
        ("select pg_ls_logdir(), pg_ls_waldir()", "file_access"),
        ("select pg_file_write('x', 'y', false)", "file_access"),
        ("select * from pg_ls_dir('/') f", "* file_access"),
        ("update t set a = pg_read_file('/x') where id = 1", "file_access c:a,id"),
        ("copy t from '/tmp/x.csv'", "file_access"),
        ("copy t to '/tmp/x'", "* file_access"),
        ("copy (select a from t) to '/tmp/x'", "file_access c:a"),
        ("copy t from stdin", ""),
        ("copy t to stdout", "*"),
        ("copy t (a, b) to stdout", "c:a,b"),
        ("copy t (a) from '/x'", "file_access c:a"),
        ("copy binary t to '/x'", "* file_access !parse"),
        ("load 'auto_explain'", "file_access"),
        ("copy t from program 'curl x'", "program_exec"),
        ("copy t to program 'gzip > /tmp/x'", "* program_exec"),
        ("copy (select 1) to program 'x'", "program_exec"),
        ("COPY t FROM PROGRAM 'x' WITH (FORMAT csv)", "program_exec"),
        ("select dblink('host=x', 'select 1')", "network_access"),
        ("select * from dblink('c', 'select a from t') as r(a int)", "* network_access"),
        ("select dblink_exec('c', 'drop table t')", "network_access"),
        ("select dblink_connect('c', 'host=x')", "network_access"),
        ("select public.dblink_connect_u('x')", "network_access"),
        ("select dblink_send_query('c', 'q'), dblink_open('c', 'q'), dblink_fetch('c', 1)", "network_access"),
        ("select * from information_schema.tables", "* catalog_probe"),
        ("select column_name from information_schema.columns where table_name = 'users'", "catalog_probe c:column_name,table_name"),
        ("select relname from pg_class", "catalog_probe"),
        ("select * from pg_catalog.pg_namespace", "* catalog_probe"),
        ("select * from pg_attribute", "* catalog_probe"),
        ("select * from pg_tables", "* catalog_probe"),
        ("select * from pg_views", "* catalog_probe"),
        ("select rolname from pg_roles", "catalog_probe"),
        ("select usename from pg_user", "catalog_probe"),
        ("select datname from pg_database", "catalog_probe"),
        ("select proname from pg_proc", "catalog_probe"),
        ("select name, setting from pg_settings", "catalog_probe"),
        ("select query from pg_stat_activity", "catalog_probe"),
        ("select * from pg_indexes", "* catalog_probe"),
        ("select query from pg_stat_statements", "catalog_probe"),
        ("select a from \"pg_class\"", "catalog_probe"),
        ("select a from \"PG_CLASS\"", ""),
        ("select a from myschema.pg_class", ""),
        ("with pg_class as (select 1 as a) select a from pg_class", ""),
        ("SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3", "catalog_probe c:nspname,oid,relname,relnamespace"),
        ("select usename, passwd from pg_shadow", "catalog_secret"),
        ("select rolname, rolpassword from pg_catalog.pg_authid", "catalog_secret"),
        ("select * from pg_user_mappings", "* catalog_secret"),
        ("select * from pg_user_mapping", "* catalog_secret"),
        ("select data from pg_largeobject", "catalog_secret"),
        ("select a from t where b in (select usename from pg_shadow)", "catalog_secret"),
        ("select chr(65)||chr(66)", "encoded_literal"),
        ("select * from users where name = chr(97)||chr(100)", "* encoded_literal"),
        ("select decode('YWRtaW4=', 'base64')", "encoded_literal"),
        ("select convert_from(decode('x', 'hex'), 'utf8')", "encoded_literal"),
        ("select pg_catalog.chr(65)", "encoded_literal"),
        ("select char(65)", "encoded_literal"),
        ("select * from t where id = 1 and 1=(select 1 from pg_sleep(5)) or 1=1", "* time_delay tautology"),
    ];

    /// PostgreSQL: `*` reads, unbounded writes, limits.
    #[rustfmt::skip]
    const STAR_WRITE_LIMIT: &[(&str, &str)] = &[
        ("select * from t", "*"),
        ("select t.* from t", "*"),
        ("select a, t.* from t", "* c:a"),
        ("select count(*) from t", ""),
        ("select count(t.*) from t", "*"),
        ("select row_to_json(t.*) from t", "*"),
        ("select row_to_json(u) from users u", "* c:u"),
        ("select u from users u", "* c:u"),
        ("select users from users", "* c:users"),
        ("select u::text from users u", "* c:u"),
        ("select u.id from users u", "c:id"),
        ("select g from generate_series(1, 3) g", "c:g"),
        ("select exists(select * from t)", "*"),
        ("select a from (select * from t) s", "* c:a"),
        ("with x as (select * from t) select a from x", "* c:a"),
        ("insert into t select * from u", "*"),
        ("insert into t values (1) returning *", "*"),
        ("update t set a = 1 where id = 1 returning *", "* c:a,id"),
        ("delete from t where id = 1 returning t.*", "* c:id"),
        ("table t", "* !parse"),
        ("TABLE public.t", "* !parse"),
        ("select * into new_t from t", "*"),
        ("select a from t", ""),
        ("select 2 * 3", ""),
        ("select a * b from t", "c:a,b"),
        ("explain select * from t", "*"),
        ("select a from t where b = (select max(c) from u)", "c:a,b,c"),
        ("update t set a = 1", "unbounded c:a"),
        ("delete from t", "unbounded"),
        ("UPDATE t SET a = 1;", "unbounded"),
        ("update t set a = 1 where 1=1", "unbounded"),
        ("delete from t where true", "unbounded"),
        ("delete from t where $1 = $2", "unbounded"),
        ("delete from t where 'a' = 'b'", "unbounded"),
        ("delete from t where 1 = 1 and 2 = 2", "unbounded"),
        ("delete from t where id = 1", "c:id"),
        ("update t set a = 1 where id = 1", "c:a,id"),
        ("update t set a = 1 where id = 1 and 1=1", "c:a,id"),
        ("update t set a = 1 where 1=1 and id = 1", "c:a,id"),
        ("delete from t where id = 1 or $1 is null", "unbounded c:id"),
        ("delete from t where exists (select 1)", "unbounded"),
        ("delete from t where exists (select 1 from u where u.id = t.id)", "c:id"),
        ("delete from t where id in (select id from u)", "c:id"),
        ("with d as (delete from t returning *) select * from d", "* unbounded"),
        ("with d as (update t set a = 1 returning a) select a from d", "unbounded c:a"),
        ("with d as (delete from t where id = 1 returning id) select id from d", "c:id"),
        ("explain analyze delete from t", "unbounded"),
        ("explain delete from t", ""),
        ("explain (analyze) delete from t", "unbounded"),
        ("explain (analyze, buffers) update t set a = 1", "unbounded"),
        ("explain (analyze false) delete from t", ""),
        ("explain (analyze off) update t set a = 1", ""),
        ("explain (analyze 0) delete from t", "unbounded"),
        ("prepare q as delete from t", "unbounded"),
        ("prepare q(int) as delete from t where id = $1", "c:id"),
        ("delete from t where current of c", "!parse"),
        ("update t set a = 1 where current of c", "!parse c:a"),
        ("update t set a = 1 from u where t.id = u.id", "c:a,id"),
        ("update t set a = 1 from u", "unbounded c:a"),
        ("delete from t using u where t.id = u.id", "c:id"),
        ("delete from t using u", "unbounded"),
        ("update only t set a = 1", "unbounded c:a"),
        ("delete from only t where t.a = 1", "c:a"),
        ("update t set a = 1 where random() < 0.5", "unbounded c:a"),
        ("update t set a = 1 where now() > '2020-01-01'", "unbounded c:a"),
        ("insert into t (a) values (1) on conflict (a) do update set b = 2", "c:a,b"),
        ("merge into t using s on t.id = s.id when matched then delete", "c:id"),
        ("truncate t", ""),
        ("copy (delete from t returning *) to stdout", "* unbounded"),
        ("with recursive x(a) as (select 1) search depth first by a set o update t set b = 1", "unbounded !parse"),
        ("with recursive x(a) as (select 1) search depth first by a set o delete from t where id = 1", "!parse"),
        ("select a from t limit 10", "limited"),
        ("select a from t limit $1", "limited"),
        ("select a from t limit all", ""),
        ("select a from t limit null", ""),
        ("select a from t offset 5", ""),
        ("select a from t fetch first 5 rows only", "limited"),
        ("select a from t fetch first row only", "limited"),
        ("select a from t offset 5 rows fetch next 5 rows only", "limited"),
        ("select a from t limit 5 offset 10", "limited"),
        ("(select a from t limit 5)", "limited"),
        ("select a from (select a from t limit 5) s", ""),
        ("select a from t where b in (select b from u limit 1)", "c:a,b"),
        ("with x as (select a from t limit 5) select a from x", ""),
        ("select a from t union select b from u limit 5", "limited"),
        ("(select a from t limit 5) union (select b from u)", ""),
        ("declare c cursor for select a from t limit 5", ""),
        ("declare c cursor for select a from t limit 5 for no key update", "!parse"),
        ("explain select a from t limit 5", ""),
        ("select a from t limit 5 for no key update", "limited !parse"),
        ("select a from t for no key update", "!parse"),
        ("select a from t limit all for no key update", "!parse"),
        ("select a from t order by a limit 1", "limited"),
    ];

    /// PostgreSQL: column lists, and the keyword-scan fallback.
    #[rustfmt::skip]
    const COLUMNS: &[(&str, &str)] = &[
        ("select a, b from t where c = 1 order by d", "c:a,b,c,d"),
        ("select t.a, s.t.b from s.t", "c:a,b"),
        ("select \"A\", \"b\" from t", "c:A,b"),
        ("select A from t", "c:a"),
        ("update t set a = 1, b = c where d = 1", "c:a,b,c,d"),
        ("update t set (a, b) = (1, 2) where id = 1", "c:a,b,id"),
        ("update t set x.y = 1 where id = 1", "c:id,x,y"),
        ("insert into t (a, b) values (1, 2)", "c:a,b"),
        ("insert into t (a) select b from u where c = 1", "c:a,b,c"),
        ("insert into t (a) values (1) on conflict (a) do update set b = excluded.b", "c:a,b"),
        ("insert into t values (default, 1)", "c:"),
        ("insert into t (\"Default\") values (default)", "c:Default"),
        ("select a from t join u using (id)", "c:a,id"),
        ("select a from t join u on t.x = u.y", "c:a,x,y"),
        ("select a from (t join u using (id))", "c:a,id"),
        ("select count(a) from t group by b having sum(c) > 1", "c:a,b,c"),
        ("select a as x from t order by x", "c:a,x"),
        ("select f(a) over (partition by b order by c) from t", "c:a,b,c"),
        ("delete from t where a = 1 returning b", "c:a,b"),
        ("select a into new_t from t", "c:a"),
        ("select 1", "c:"),
        ("set search_path = app, public", "c:"),
        ("set statement_timeout to 0", "c:"),
        ("select current_user, now(), current_timestamp", "c:"),
        ("select extract(year from ts) from t", "c:ts"),
        ("select data->>'k' from t", "c:data"),
        ("select a[1] from t", "c:a"),
        ("select cast(a as text), b::int from t", "c:a,b"),
        ("merge into t using s on t.id = s.id when matched then update set a = s.a when not matched then insert (id, b) values (s.id, s.b)", "c:a,b,id"),
        ("create table t (id int, name text default 'x')", "c:id,name"),
        ("alter table t add column c int", "c:c"),
        ("alter table t drop column c", "c:c"),
        ("alter table t rename column a to b", "c:a,b"),
        ("alter table t alter column a set not null", "c:a"),
        ("create index i on t (a, lower(b))", "c:a,b"),
        ("comment on column t.c is 'x'", "c:c"),
        ("copy t (a, b) from stdin", "c:a,b"),
        ("with x as (select a from t) select a from x", "c:a"),
        ("select a from t where b in (select c from u)", "c:a,b,c"),
        ("select distinct on (a) a, b from t order by a, c desc", "c:a,b,c"),
        ("select a from t where b = any($1) and c @> '{}'", "c:a,b,c"),
        ("select case when a > 0 then b else c end from t", "c:a,b,c"),
        ("insert into t (a) values (1) returning id", "c:a,id"),
        ("select sum(a) filter (where b > 0) from t", "c:a,b"),
        ("select a from t where (b, c) = (1, 2)", "c:a,b,c"),
        ("select a from t where b is not null and c between 1 and 2", "c:a,b,c"),
        // keyword-scan fallback (sqlparser rejects these)
        ("vacuum (verbose) t", "!parse c:"),
        ("vacuum (verbose, analyze) t (a, b)", "!parse c:a,b"),
        ("VACUUM ANALYZE t (a, b)", "!parse c:a,b"),
        ("table t", "* !parse c:"),
        ("do $$ begin delete from t; end $$", "!parse c:"),
        ("delete from t where current of c", "!parse c:"),
        ("select a, b from t where c = 1 for no key update", "!parse c:a,b,c"),
        ("select \"A\", x.b from t x for no key update", "!parse c:A,b"),
        ("select f(a) from t for no key update", "!parse c:a"),
        ("select a::int as z from s.t for no key update", "!parse c:a"),
        ("select * from t for no key update", "* !parse c:"),
        ("select a, * from t for no key update", "* !parse c:a"),
        ("select t.* from t for no key update", "* !parse c:"),
        ("select count(*) from t for no key update", "!parse c:"),
        ("select a from t where b = 1 or 1 = 1 for no key update", "tautology !parse c:a,b"),
        ("select a from t where b = 1 or c = 1 for no key update", "!parse c:a,b,c"),
        ("select a from t where ($1 is null or b = $2) for no key update", "!parse c:a,b"),
        ("select a from t where b = 1 or $1 is not null for no key update", "!parse c:a,b"),
        ("select a from t where b = 1 or 'a' = 'a') x", "tautology !parse"),
        ("select a from t union select null, null for no key update", "union_select !parse"),
        ("select a from t union select 1 from u for no key update", "union_select !parse"),
        ("select a from t union select b from u for no key update", "!parse c:a,b"),
        ("select a from t union select passwd from pg_shadow for no key update", "union_select catalog_secret !parse"),
        ("select pg_sleep(1) from t for no key update", "time_delay !parse"),
        ("select a from pg_class for no key update", "catalog_probe !parse c:a"),
    ];

    /// MySQL.
    #[rustfmt::skip]
    const MYSQL: &[(&str, &str)] = &[
        ("select * from t where a=1 or 1 -- ", "* tautology comment_truncation c:a"),
        ("select * from t where a=1 or 1=1 #", "* tautology comment_truncation c:a"),
        ("select * from t where a = 'x' # comment", "* comment_truncation"),
        ("select * from t where a = 'x' # comment\n", "*"),
        ("select * from users where name = 'admin'-- ", "* comment_truncation"),
        ("select * from t where a = ? || 1=1", "* tautology"),
        ("select * from t where a = ? || b = ?", "*"),
        ("select * from t where a = ? or b = ?", "* c:a,b"),
        ("select * from t into outfile '/tmp/x'", "* file_access !parse"),
        ("select a from t into dumpfile '/tmp/x'", "file_access !parse"),
        // `@v` / `@@v` are one word: variables, not columns.
        ("select a into @v from t", "c:a"),
        ("select @x, a from t", "c:a"),
        ("select @@version_comment limit 1", "c: limited"),
        ("set @@session.sql_mode = 'ANSI_QUOTES'", "c:"),
        ("load data infile '/tmp/x' into table t", "file_access !parse"),
        ("load data local infile '/tmp/x' into table t", "file_access !parse"),
        ("select load_file('/etc/passwd')", "file_access"),
        ("select sleep(5)", "time_delay"),
        ("select * from t where id = 1 and sleep(5)", "* time_delay c:id"),
        ("select benchmark(1000000, md5('a'))", "time_delay"),
        ("select SLEEP(5)", "time_delay"),
        ("select user, authentication_string from mysql.user", "catalog_secret c:authentication_string,user"),
        ("select * from `mysql`.`user`", "* catalog_secret"),
        ("select * from mysql.db", "* catalog_probe"),
        ("select * from performance_schema.threads", "* catalog_probe"),
        ("select * from sys.version", "* catalog_probe"),
        ("select table_name from information_schema.tables", "catalog_probe"),
        ("select * from sys", "*"),
        ("select * from pg_shadow", "*"),
        ("select char(97, 100)", "encoded_literal"),
        ("select unhex('61')", "encoded_literal"),
        ("select from_base64('YQ==')", "encoded_literal"),
        ("delete from t limit 10", "unbounded"),
        ("delete from t where a = 1 limit 10", "c:a"),
        ("update t set a = 1 where id = ? || 1=1", "tautology unbounded"),
        ("delete from t where id = 1 or 1 -- ", "tautology unbounded comment_truncation"),
        ("select a from t limit 5, 10", "limited"),
        ("select a from t limit 10 offset 5", "limited"),
        ("insert into t set a = 1", "c:a"),
        ("update t set t.a = 1 where t.id = 1", "c:a,id"),
        ("insert into t (a) values (1) on duplicate key update b = values(b)", "c:a,b"),
        ("select a from t where id = 1 union select user, password from mysql.user", "union_select catalog_secret"),
        ("select * from `Shop`.`Orders` where id = ?", "* c:id"),
    ];

    #[test]
    fn tautology_table() {
        run(TAUTOLOGY, PG);
    }

    #[test]
    fn union_table() {
        run(UNION, PG);
    }

    #[test]
    fn truncation_table() {
        run(TRUNCATION, PG);
    }

    #[test]
    fn function_and_catalog_table() {
        run(FUNCTIONS_AND_CATALOGS, PG);
    }

    #[test]
    fn star_write_limit_table() {
        run(STAR_WRITE_LIMIT, PG);
    }

    #[test]
    fn column_table() {
        run(COLUMNS, PG);
    }

    #[test]
    fn mysql_table() {
        run(MYSQL, MY);
    }

    #[test]
    fn enough_cases() {
        let pg = TAUTOLOGY.len()
            + UNION.len()
            + TRUNCATION.len()
            + FUNCTIONS_AND_CATALOGS.len()
            + STAR_WRITE_LIMIT.len()
            + COLUMNS.len();
        assert!(pg >= 250, "{pg} PostgreSQL cases");
        assert!(MYSQL.len() >= 20, "{} MySQL cases", MYSQL.len());
    }

    #[test]
    fn long_operator_chains() {
        // sqlparser builds `a AND b AND …` without a depth limit; the shape
        // walk must neither overflow nor go quadratic on them.
        let n = 25_000;
        let and = format!("delete from t where {}1 = 1", "a = 1 and ".repeat(n));
        let or = format!("delete from t where {}1 = 1", "a = 1 or ".repeat(n));
        let sum = format!("delete from t where {}1 = 1", "1 + ".repeat(2 * n));
        let f = &analyze(&and, PG)[0];
        assert!(f.parse_error.is_none() && !f.unbounded_write && f.signals.is_empty());
        let f = &analyze(&or, PG)[0];
        assert!(f.parse_error.is_none() && f.unbounded_write);
        assert_eq!(f.signals, Signals::TAUTOLOGY);
        let f = &analyze(&sum, PG)[0];
        assert!(f.parse_error.is_none() && f.unbounded_write && f.signals.is_empty());
    }

    #[test]
    fn longest_analysable_chain_fits_a_worker_stack() {
        // The deepest tree a statement within MAX_ANALYZED_LEN can make
        // (`? + ? + …`, four skeleton bytes per operator), analysed on a
        // thread with a tokio worker's 2 MiB stack: the parse must grow its
        // own stack rather than crash the process.
        let terms = crate::MAX_ANALYZED_LEN / 4 - 64;
        let sql = format!("select 1 from t where a = {}1", "1+".repeat(terms));
        let f = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || analyze(&sql, PG).remove(0))
            .expect("spawn")
            .join()
            .expect("no stack overflow");
        assert!(f.parse_error.is_none(), "{:?}", f.parse_error);
        assert_eq!(f.tables, ["t"]);
    }

    #[test]
    fn shape_is_a_function_of_the_fingerprint() {
        // Variants differing only in literals, spacing, case and comments
        // (not a comment running to the end) share facts.
        let groups: &[(&[&str], LexOptions)] = &[
            (
                &[
                    "select * from users where name = '' or '1'='1'",
                    "SELECT * FROM users WHERE name = $1 OR $2 = $3",
                    "select *\n from users /* c */ where name = E'x' or 5 = 7 -- c\n",
                ],
                PG,
            ),
            (
                &[
                    "delete from t where 1 = 1",
                    "delete from t where 'a' = 'b'",
                    "DELETE FROM t WHERE $1=$2",
                ],
                PG,
            ),
            (
                &[
                    "select a from t union select null, 1 from pg_shadow",
                    "select a from t union select null, 'x' from pg_shadow",
                ],
                PG,
            ),
            (
                &[
                    "select a from t where b = 1 limit 10",
                    "select a from t where b = 'x' limit $1",
                ],
                PG,
            ),
            (&["copy t from '/a'", "copy t from E'/b'"], PG),
            (
                &[
                    "select a from t where b = 1 or 1 = 1 for no key update",
                    "select a from t where b = 'x' or 'y' = $1 for no key update",
                ],
                PG,
            ),
            (
                &[
                    "select a from t where b in (1, 2, 3) or 1 in (4, 5)",
                    "select a from t where b in ($1) or $2 in ($3, $4)",
                ],
                PG,
            ),
            (
                &[
                    "select * from t where a = 1 or 1 -- ",
                    "select * from t where a = 'x' or 2 #",
                    "select * from t where a = ? or ? -- x",
                ],
                MY,
            ),
        ];
        for (group, opts) in groups {
            let first = analyze(group[0], *opts);
            for sql in &group[1..] {
                assert_eq!(analyze(sql, *opts), first, "{sql:?} vs {:?}", group[0]);
            }
        }
        // A comment running to the end of input is part of the shape.
        let open = analyze("select a from t where b = 'x'--", PG);
        let closed = analyze("select a from t where b = 'x'--\n", PG);
        assert_ne!(open[0].fingerprint, closed[0].fingerprint);
        assert!(open[0].signals.contains(Signals::COMMENT_TRUNCATION));
        assert!(!closed[0].signals.contains(Signals::COMMENT_TRUNCATION));
    }
}
