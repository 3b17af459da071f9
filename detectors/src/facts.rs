//! Statement facts: what each statement does ([`Operation`]), which
//! relations it touches and which functions it calls. It owns the mapping
//! from SQL to those facts and must never let a statement look more
//! harmless than it is: when in doubt it reports more tables, the more
//! destructive operation, and a `parse_error` rather than silence.
//!
//! The operation comes from the statement's leading keywords (so statements
//! sqlparser cannot parse get one too); tables, functions, columns and the
//! shape facts come from the sqlparser AST of the statement's literal-free
//! skeleton (see [`crate::fingerprint`]), or, when that does not parse,
//! from a best-effort keyword scan (the `shape` module owns the shape rules).
//! Every fact is a function of the normalised text, so facts cached by
//! fingerprint are right for every statement that shares it. In particular
//! literal values are invisible: `1`, `'x'` and `$1` all look alike, so
//! `$1 = $2` counts as a constant comparison.
//!
//! # Operation mapping
//!
//! | Statement (leading keywords)                                            | Operation     |
//! |-------------------------------------------------------------------------|---------------|
//! | `SELECT`, `VALUES`, `TABLE t`, `(SELECT …)`                             | `Select`      |
//! | `SELECT … INTO t` (PostgreSQL: creates `t`)                             | `Ddl`         |
//! | MySQL `INTO OUTFILE/DUMPFILE` anywhere in a query (`SELECT … INTO OUTFILE … FROM t`, `SELECT … FROM t INTO OUTFILE …`, `(SELECT …) INTO OUTFILE`, `TABLE t INTO OUTFILE`); `SELECT … INTO @var` stays `Select` | `CopyOut` |
//! | `DECLARE c CURSOR FOR SELECT …` (the cursor runs the query)             | `Select`      |
//! | `INSERT`, `REPLACE` (MySQL)                                             | `Insert`      |
//! | `UPDATE` / `DELETE` / `MERGE`                                           | same name     |
//! | `WITH … <main>`: the main statement's operation, but a data-modifying CTE (`WITH d AS (DELETE …)`) wins when more destructive (Delete > Merge > Update > Insert > Select) | see left |
//! | `COPY t FROM STDIN / 'file' / PROGRAM`, MySQL `LOAD DATA [LOCAL] INFILE`, `LOAD XML [LOCAL] INFILE` (`LOCAL`, a client-side file, is not told apart) | `CopyIn` |
//! | `COPY t TO …`, `COPY (query) TO …` (a data-modifying query wins as above) | `CopyOut`   |
//! | `CREATE` / `ALTER` / `DROP` of anything but roles (tables, views, indexes, functions, schemas, extensions, sequences, types, `USER MAPPING`, MySQL `PROCEDURE`/`FUNCTION`/`TRIGGER`/`EVENT` with their `BEGIN … END` bodies, …), `ALTER SYSTEM`, `TRUNCATE`, `IMPORT FOREIGN SCHEMA`, `CREATE TABLE AS`, `RENAME` (MySQL) | `Ddl` |
//! | `GRANT`, `REVOKE`, `CREATE/ALTER/DROP ROLE/USER/GROUP`, `ALTER DEFAULT PRIVILEGES`, `REASSIGN OWNED`, `DROP OWNED`, `SET [SESSION/LOCAL] ROLE`, `SET SESSION AUTHORIZATION`, `RESET ROLE`, `RESET SESSION AUTHORIZATION`, `SET PASSWORD` (MySQL) | `Dcl` |
//! | `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`, `SAVEPOINT`, `RELEASE`, `PREPARE TRANSACTION`, `COMMIT/ROLLBACK PREPARED`, `SET TRANSACTION`, `SET CONSTRAINTS`, `SET SESSION CHARACTERISTICS`, `XA` (MySQL) | `Transaction` |
//! | `SET`, `RESET`, `DISCARD`; MySQL `USE db`, `SET NAMES`, `SET @v = …`, `SET @@[session.]v = …` | `Set` |
//! | `SHOW` (MySQL `SHOW GRANTS`, `SHOW DATABASES`, `SHOW [FULL] COLUMNS FROM t`, …), MySQL `DESCRIBE t` / `DESC t` | `Show` |
//! | `CALL` / `DO` (PostgreSQL's code block; MySQL's `DO expr`)              | `Call` / `Do` |
//! | `PREPARE name AS …` (MySQL `PREPARE name FROM '…'`) / `EXECUTE` / `DEALLOCATE [PREPARE]` | `Prepare` / `Execute` / `Deallocate` |
//! | `LISTEN`, `UNLISTEN` / `NOTIFY`                                         | `Listen` / `Notify` |
//! | `EXPLAIN …`; but `EXPLAIN ANALYZE` of INSERT/UPDATE/DELETE/MERGE runs it, so it reports that operation | `Explain` |
//! | `VACUUM`, `ANALYZE`, `CHECKPOINT`, `REINDEX`, `CLUSTER`, `LOAD`, `FETCH`, `MOVE`, `CLOSE`, `COMMENT`, `SECURITY LABEL`, `REFRESH MATERIALIZED VIEW`, `LOCK`, MySQL `FLUSH`/`KILL`/`OPTIMIZE`/`LOCK TABLES`/… | `Utility` |
//! | nothing but comments / whitespace                                       | `Empty`       |
//! | anything else, including MariaDB's stand-alone compound statements (`BEGIN NOT ATOMIC …`, `IF …`, `l: LOOP …`), which may run anything | `Unknown` |
//!
//! # Tables
//!
//! Relations are reported normalised: unquoted identifiers ASCII
//! lower-cased, quoted ones as written without quotes, qualified names
//! joined with `.` as written (`public.t` and `t` are different strings:
//! match them with [`name_matches`]). CTE names are not tables, except
//! where PostgreSQL never resolves a CTE (the target of
//! INSERT/UPDATE/DELETE/MERGE); a CTE only hides a same-named table where it
//! is in scope (a non-recursive CTE does not see itself). MySQL also
//! reports the table of `SHOW CREATE TABLE/VIEW t` and `SHOW COLUMNS FROM
//! t`, and `LOAD DATA … INTO TABLE t`. An unqualified name is reported as
//! written: which schema it resolves to (`USE mysql; SELECT * FROM user`,
//! PostgreSQL's `search_path`) is the session's, not the statement's.
//!
//! # MySQL
//!
//! Lexing follows the server's (see [`crate::lexer`]): `#` and `-- `
//! comments, backticks, backslash escapes unless `NO_BACKSLASH_ESCAPES`,
//! `"…"` as identifiers under `ANSI_QUOTES`, `@var`/`@@var`. Executable
//! comments `/*! … */`, `/*!NNNNN … */` and MariaDB's `/*M! … */` are
//! read as the code they are: their markers are dropped from the
//! normalised text and the skeleton, so tables, calls and every signal see
//! inside them (`… /*!50000 UNION SELECT … FROM mysql.user */`). Where a
//! versioned or `/*M!` comment's extent depends on the server version
//! (a quote or comment inside it reaches past its `*/`), the statement is
//! not parsed (`parse_error`), and the keyword scan reads text that the
//! lexer left no quote or comment to hide (everything either server could
//! run shows). The splitter keeps `CREATE PROCEDURE/FUNCTION/TRIGGER/
//! EVENT … BEGIN …; …; END` (and nested IF/CASE/LOOP/WHILE/REPEAT blocks)
//! as one statement, as the server does.
//!
//! The skeleton is parsed with sqlparser's MySQL dialect, after rewriting
//! `LOCK IN SHARE MODE` to its equivalent `FOR SHARE`. Client and sysbench
//! statements parse (`SET NAMES`, `SET @@session.x`, `SELECT @@version_
//! comment LIMIT 1`, `SHOW …`, `USE`, `START TRANSACTION READ ONLY`,
//! `KILL n`, `LIMIT o, n`, `INSERT … SET`, `ON DUPLICATE KEY UPDATE`,
//! `STRAIGHT_JOIN`, `->>`, …). These do not, and get keyword-scan facts
//! with a `parse_error`: `INTO OUTFILE/DUMPFILE`, `LOAD DATA/XML`, stored
//! program definitions with a `BEGIN … END` body, `PREPARE s FROM '…'`
//! (deliberately: the statement it prepares is a string literal the
//! firewall cannot see, so it must not pass as checked), and `DO expr`.
//!
//! # Shape facts and signals
//!
//! "Constant" below means built only from literals and parameters (the
//! fingerprint cannot tell them apart), with casts, parentheses, operators,
//! comparisons, LIKE/IN/BETWEEN/IS tests, CASE, and calls whose arguments
//! are all constant (`now()`, `lower('A')`); never a column or subquery.
//!
//! | Fact | Set when (from the AST) | Without a parse (keyword scan) |
//! |------|-------------------------|--------------------------------|
//! | `columns` | every column reference (last name part: `t.c` → `c`): expressions anywhere (select list, WHERE, JOIN ON, GROUP/ORDER BY, function arguments, RETURNING, index keys, defaults), `JOIN … USING (c)`, INSERT/MERGE column lists, SET targets, `ON CONFLICT (c)`, `COPY t (c)`, CREATE TABLE / ALTER TABLE columns, `COMMENT ON COLUMN`. Select-list aliases used in ORDER BY count; SET-statement values, `SELECT … INTO` targets, `DEFAULT` and MySQL `@vars` do not | every word that is not a keyword, relation, alias, call, qualifier or type (over-reports) |
//! | `select_star` | `*` / `t.*` in any select list or RETURNING, `t.*` as a call argument (`row_to_json(t.*)`; not `count(*)`), a whole-row reference in a PostgreSQL select list (`SELECT u FROM users u`, `row_to_json(u)`), `TABLE t`, `COPY t TO …` without a column list | a `*` after SELECT/DISTINCT/ALL/RETURNING/`,`/`.`; leading `TABLE`; COPY as left |
//! | `unbounded_write` | an UPDATE/DELETE anywhere (CTE, `EXPLAIN ANALYZE`, `PREPARE`, `COPY (…)`, but not a plain `EXPLAIN`) with no WHERE, a WHERE naming no column, or a top-level OR branch naming no column (`OR 1=1`, also `OR $1 IS NULL`). `WHERE CURRENT OF c` does not parse: bounded | operation UPDATE/DELETE and no WHERE at the verb's nesting depth; any WHERE (even `1=1`) counts as a bound |
//! | `limited` | the statement is a query whose outermost level (through wrapping parentheses) has `LIMIT n`, `LIMIT o, n`, `FETCH FIRST [n] ROWS`; not `LIMIT ALL`, `LIMIT NULL`, `OFFSET` alone, `FETCH … PERCENT` | a depth-0 LIMIT (not ALL/NULL) or FETCH in a query |
//! | `TAUTOLOGY` | an operand of any OR (WHERE, HAVING, JOIN ON, subqueries, CASE…) that is constant and not a null test: `OR 1=1`, `OR 'a'='a'`, `OR 1`, `OR NOT false`, `OR 1 IN (1)`, `OR 'x' LIKE '%'`. Not `$1 IS NULL OR col = $1` (ORM idiom), not `WHERE 1=1` without OR. MySQL: a constant after `\|\|` | `OR` (MySQL also `\|\|`) followed by a run of constants that is not a null test |
//! | `UNION_SELECT` | a UNION branch after the first with no FROM, a constant-only projection (`NULL, 1`), or a catalog relation (see below); not INTERSECT/EXCEPT | `UNION [ALL] SELECT` with no FROM or a constant projection; any UNION plus a catalog relation |
//! | `COMMENT_TRUNCATION` | the normalised text ends in [`crate::fingerprint::TRUNCATION_MARKER`]: a `--`/`#` comment with no line break after it, or an unterminated `/*`, after a token of the statement | same |
//! | `TIME_DELAY` | a call of `pg_sleep`, `pg_sleep_for`, `pg_sleep_until`, `sleep`, `benchmark` (any schema; also inside MySQL executable comments). Not `get_lock` (applications use it as an advisory lock) | same, on the scanned calls |
//! | `FILE_ACCESS` | a call of `pg_read_file`, `pg_read_binary_file`, `pg_ls_dir`/`logdir`/`waldir`/`tmpdir`/`archive_statusdir`, `pg_stat_file`, `lo_import`, `lo_export`, `pg_file_write`/`rename`/`unlink`, `load_file`; `COPY … FROM/TO 'file'`; PostgreSQL `LOAD 'lib'`; MySQL `INTO OUTFILE/DUMPFILE`, `LOAD DATA [LOCAL] INFILE`, `LOAD XML` | same (keywords are read from tokens in both cases) |
//! | `PROGRAM_EXEC` | `COPY … FROM/TO PROGRAM` | same |
//! | `NETWORK_ACCESS` | a call whose name starts with `dblink` | same |
//! | `CATALOG_PROBE` | a relation `information_schema.*` (MySQL: any case, quoted or not: `` `INFORMATION_SCHEMA`.`TABLES` ``); PostgreSQL `pg_class`, `pg_attribute`, `pg_namespace`, `pg_tables`, `pg_views`, `pg_roles`, `pg_user`, `pg_database`, `pg_proc`, `pg_settings`, `pg_stat_activity`, `pg_indexes`, `pg_stat_statements`, bare or `pg_catalog.`-qualified; MySQL `mysql.*`, `performance_schema.*`, `sys.*` (qualified only) | same, on the scanned relations |
//! | `CATALOG_SECRET` | PostgreSQL `pg_shadow`, `pg_authid`, `pg_user_mapping(s)`, `pg_largeobject` (bare or `pg_catalog.`); MySQL `mysql.user`, `mysql.global_priv` (MariaDB's password store), `mysql.slave_master_info` (the replication password), `mysql.servers` (FEDERATED passwords), qualified only. Not also CATALOG_PROBE | same |
//! | `ENCODED_LITERAL` | a call of `chr`, `char`, `decode`, `convert_from`, `unhex`, `from_base64` (any schema) | same |
//!
//! Names compare as normalised (a quoted `"PG_SHADOW"` is another
//! relation), ASCII case-insensitively in MySQL. A CTE that hides a catalog
//! name hides its signal too. Code inside string bodies (`DO $$…$$`,
//! function bodies, `dblink(…, 'sql')`) is a literal and invisible.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    CommentObject, CopySource, Expr, FromTable, GrantObjects, Ident, ObjectName, ObjectNamePart,
    ObjectType, Query, Select, SetExpr, ShowCreateObject, Statement, TableFactor, TableObject,
    Visit, Visitor,
};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

use crate::error::Error;
use crate::fingerprint::{fingerprint, skeleton, Fingerprint, TRUNCATION_MARKER};
use crate::lexer::{Dialect, LexOptions, Lexer, Token, TokenKind};
use crate::shape::{name_signals, scan_shape, token_shape, Shape, ShapeCollector};
use crate::signals::Signals;
use crate::split::split_statements;

/// Longest statement skeleton (the normalised text with parseable literal
/// stand-ins, see [`crate::fingerprint`]) handed to sqlparser; longer
/// statements get a fingerprint, a keyword-derived operation and a keyword
/// scan, but no parse. sqlparser costs ~0.4 µs per byte of dense SQL (an
/// 850 kB statement took 370 ms), so this bounds one cache miss to ~0.1 s.
/// Literal values and collapsed value lists do not count, so bulk INSERTs
/// and large bytea/JSON payloads never hit it; and since the skeleton is a
/// function of the normalised text, whether a statement is parsed is a
/// property of its fingerprint, never of which variant came first.
pub const MAX_ANALYZED_LEN: usize = 256 << 10;
/// sqlparser's nesting limit (its own default, stated here so a sqlparser
/// upgrade cannot silently change it). Deeper input is a parse error.
pub const PARSER_RECURSION_LIMIT: usize = 50;
/// Stack that must remain for sqlparser to run on the caller's stack;
/// below it, [`PARSE_STACK_SIZE`] is allocated for the parse. Sized from
/// the measured worst case within [`PARSER_RECURSION_LIMIT`] (~0.9 MiB
/// release, ~3.7 MiB debug, whose frames are far larger).
pub const PARSE_STACK_RED_ZONE: usize = if cfg!(debug_assertions) {
    6 << 20
} else {
    3 << 19
};
/// Stack reserved per byte of skeleton for a parse (see
/// `parse_and_collect`): a chain of binary operators costs one frame of
/// tree walk and drop per operator, at least four skeleton bytes each
/// (`0 + `). Sized with a 2–4× margin over the measured worst case; at
/// [`MAX_ANALYZED_LEN`] this reserves 16 MiB (64 MiB in debug builds) of
/// address space, touched only as deep as the statement needs.
const STACK_BYTES_PER_SKELETON_BYTE: usize = if cfg!(debug_assertions) { 256 } else { 64 };
/// Size of the stack segment a parse gets when the caller's is short.
pub const PARSE_STACK_SIZE: usize = if cfg!(debug_assertions) {
    8 << 20
} else {
    4 << 20
};
/// How deep the keyword classifier follows nested statements
/// (`EXPLAIN ANALYZE WITH … AS (…)`, `COPY (…)`); deeper is `Unknown`.
const MAX_CLASSIFY_DEPTH: usize = 8;
/// Longest `parse_error` kept: it lands in audit records.
const MAX_PARSE_ERROR_LEN: usize = 256;

/// What a statement does, coarse enough for policy rules to name.
///
/// The discriminant order is [`Operation::ALL`]'s order, so `op as usize`
/// indexes per-operation arrays (the proxy's metrics do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    CopyIn,
    CopyOut,
    Ddl,
    Dcl,
    Transaction,
    Set,
    Show,
    Call,
    Do,
    Prepare,
    Execute,
    Deallocate,
    Listen,
    Notify,
    Explain,
    Utility,
    Empty,
    /// The default: a statement nobody has classified is treated as the
    /// least understood kind, never as a harmless one.
    #[default]
    Unknown,
}

impl Operation {
    /// Every operation, in discriminant order.
    pub const ALL: [Operation; 23] = [
        Operation::Select,
        Operation::Insert,
        Operation::Update,
        Operation::Delete,
        Operation::Merge,
        Operation::CopyIn,
        Operation::CopyOut,
        Operation::Ddl,
        Operation::Dcl,
        Operation::Transaction,
        Operation::Set,
        Operation::Show,
        Operation::Call,
        Operation::Do,
        Operation::Prepare,
        Operation::Execute,
        Operation::Deallocate,
        Operation::Listen,
        Operation::Notify,
        Operation::Explain,
        Operation::Utility,
        Operation::Empty,
        Operation::Unknown,
    ];

    /// snake_case name, as metrics labels and policy files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Select => "select",
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Merge => "merge",
            Operation::CopyIn => "copy_in",
            Operation::CopyOut => "copy_out",
            Operation::Ddl => "ddl",
            Operation::Dcl => "dcl",
            Operation::Transaction => "transaction",
            Operation::Set => "set",
            Operation::Show => "show",
            Operation::Call => "call",
            Operation::Do => "do",
            Operation::Prepare => "prepare",
            Operation::Execute => "execute",
            Operation::Deallocate => "deallocate",
            Operation::Listen => "listen",
            Operation::Notify => "notify",
            Operation::Explain => "explain",
            Operation::Utility => "utility",
            Operation::Empty => "empty",
            Operation::Unknown => "unknown",
        }
    }

    /// How destructive a data-modifying operation is; 0 for the rest. When a
    /// statement runs another inside it, the higher rank is reported, so a
    /// rule about `delete` cannot be dodged by wrapping the DELETE in a CTE.
    fn write_rank(self) -> u8 {
        match self {
            Operation::Delete => 4,
            Operation::Merge => 3,
            Operation::Update => 2,
            Operation::Insert => 1,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the policy layer learns about one statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatementFacts {
    pub operation: Operation,
    /// Relations touched, normalised (see the module docs), sorted,
    /// deduplicated: targets of INSERT/UPDATE/DELETE/MERGE/COPY/TRUNCATE/
    /// DROP/ALTER/CREATE TABLE/LOCK/GRANT ON TABLE, and every FROM/JOIN/
    /// subquery/CTE source, but not the CTE names themselves.
    pub tables: Vec<String>,
    /// Functions called (`pg_sleep`, `pg_catalog.pg_read_file`), normalised
    /// like tables: a rule naming the bare function should match a
    /// schema-qualified call, which [`name_matches`] does.
    pub functions: Vec<String>,
    pub fingerprint: Fingerprint,
    pub normalized: String,
    /// Why sqlparser did not parse the statement (the operation then comes
    /// from the leading keywords alone, and tables/functions from a
    /// keyword scan). Never contains a literal value.
    pub parse_error: Option<String>,
    /// Column names referenced anywhere in the statement (select list,
    /// WHERE, SET targets, INSERT column lists, ORDER BY, …): the last part
    /// of each reference, normalised like tables, sorted, deduplicated.
    /// `t.c` gives `c`; which table a column belongs to is left to the
    /// policy layer, which must assume any table of the statement. Without
    /// a parse, a keyword scan that over-reports (see the module docs).
    pub columns: Vec<String>,
    /// A `*` or `t.*` in any select list or RETURNING (not `count(*)`), a
    /// whole-row reference (`SELECT u FROM users u`), `TABLE t`, or
    /// `COPY t TO` without a column list: every column of the source is
    /// read.
    pub select_star: bool,
    /// An UPDATE or DELETE (also inside a CTE, or run by EXPLAIN ANALYZE)
    /// with no WHERE, or with a WHERE that names no column or has an OR
    /// branch that names none (`WHERE 1=1`, `WHERE true`,
    /// `WHERE id = $1 OR 1 = 1`): it may touch every row.
    pub unbounded_write: bool,
    /// The statement is a query whose outermost level has a row limit
    /// (`LIMIT n`, `FETCH FIRST`, MySQL `LIMIT o, n`); `LIMIT ALL` and
    /// `LIMIT NULL` are no limit. False for every other statement.
    pub limited: bool,
    /// Injection and misuse signals found in the statement's shape (see
    /// the module docs for each rule).
    pub signals: Signals,
}

impl StatementFacts {
    /// Whether any table matches `pattern` (a normalised, possibly
    /// qualified name) under [`name_matches`].
    pub fn touches_table(&self, pattern: &str) -> bool {
        self.tables.iter().any(|t| name_matches(pattern, t))
    }

    /// Whether any called function matches `pattern` under [`name_matches`].
    pub fn calls_function(&self, pattern: &str) -> bool {
        self.functions.iter().any(|f| name_matches(pattern, f))
    }
}

/// Whether a normalised name seen in a statement may denote the object a
/// rule names. Parts are compared from the right over the shorter name, so
/// `accounts` matches `public.accounts` (a bare rule covers every schema)
/// and `public.accounts` matches `accounts` (without the session's
/// search_path, an unqualified reference may be that table), while
/// `a.t` and `b.t` do not match. Both sides must already be normalised.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let mut p = pattern.rsplit('.');
    let mut n = name.rsplit('.');
    loop {
        match (p.next(), n.next()) {
            (Some(a), Some(b)) if a != b => return false,
            (Some(_), Some(_)) => {}
            _ => return true,
        }
    }
}

/// One [`StatementFacts`] per statement of `sql`, in order (see
/// [`split_statements`]); a string with no statement yields one `Empty`.
/// Never panics: sqlparser runs under a recursion limit, a length limit and
/// `catch_unwind`.
pub fn analyze(sql: &str, opts: LexOptions) -> Vec<StatementFacts> {
    let statements = split_statements(sql, opts);
    if statements.is_empty() {
        let (fingerprint, normalized) = fingerprint(sql, opts);
        return vec![StatementFacts {
            operation: Operation::Empty,
            fingerprint,
            normalized,
            ..StatementFacts::default()
        }];
    }
    statements
        .into_iter()
        .map(|stmt| analyze_statement(stmt, opts))
        .collect()
}

/// Facts of one statement the splitter isolated.
fn analyze_statement(stmt: &str, opts: LexOptions) -> StatementFacts {
    let (fingerprint, normalized) = fingerprint(stmt, opts);
    let tokens: Vec<Token<'_>> = Lexer::new(stmt, opts)
        .filter(|t| t.kind.is_significant())
        .collect();
    let operation = classify_statement(&tokens, opts.dialect);
    let mut parse_text = skeleton(stmt, opts);
    if opts.dialect == Dialect::MySql {
        parse_text = mysql_parse_text(parse_text);
    }
    let limit = if tokens.iter().any(|t| t.kind == TokenKind::Ambiguous) {
        // Which text is code depends on the server's version (see the
        // lexer's module docs): no single parse is right.
        Err(Error::VersionDependentComment)
    } else if parse_text.len() > MAX_ANALYZED_LEN {
        Err(Error::TooLong {
            len: parse_text.len(),
            max: MAX_ANALYZED_LEN,
        })
    } else {
        Ok(())
    };
    let parsed = limit.and_then(|()| parse_and_collect(&parse_text, opts));
    let (mut objects, parse_error, mut shape) = match parsed {
        Ok((objects, error, shape)) => (objects, error, shape),
        Err(e) => {
            let (mut objects, relation_tokens) = keyword_scan(&tokens);
            sort_dedup(&mut objects.tables);
            let shape = scan_shape(
                &tokens,
                &relation_tokens,
                opts.dialect,
                operation,
                &objects.tables,
            );
            (objects, Some(e), shape)
        }
    };
    sort_dedup(&mut objects.tables);
    sort_dedup(&mut objects.functions);
    sort_dedup(&mut shape.columns);
    token_shape(&tokens, opts.dialect, &mut shape);
    shape.signals.insert(name_signals(
        &objects.tables,
        &objects.functions,
        opts.dialect,
    ));
    if normalized.ends_with(TRUNCATION_MARKER) {
        shape.signals.insert(Signals::COMMENT_TRUNCATION);
    }
    StatementFacts {
        operation,
        tables: objects.tables,
        functions: objects.functions,
        fingerprint,
        normalized,
        parse_error: parse_error.map(|e| sanitize_error(&e.to_string())),
        columns: shape.columns,
        select_star: shape.select_star,
        unbounded_write: shape.unbounded_write,
        limited: shape.limited,
        signals: shape.signals,
    }
}

/// MySQL spellings sqlparser does not accept, rewritten in the skeleton to
/// an equivalent it does: `LOCK IN SHARE MODE` → `FOR SHARE` (the same lock
/// since MySQL 8.0). Words inside quoted identifiers are left alone, so the
/// rewrite is a function of the normalised text like the skeleton itself.
fn mysql_parse_text(skeleton: String) -> String {
    const FROM: &str = "lock in share mode";
    const TO: &str = "for share";
    if !skeleton.contains(FROM) {
        return skeleton;
    }
    let b = skeleton.as_bytes();
    let mut out = String::with_capacity(skeleton.len());
    let mut quote: Option<u8> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'`' || c == b'"' => quote = Some(c),
            None => {
                let word_start = i == 0 || !is_word_byte(b[i - 1]);
                let end = i + FROM.len();
                let word_end = b.get(end).is_none_or(|&n| !is_word_byte(n));
                if word_start && word_end && skeleton.get(i..end) == Some(FROM) {
                    out.push_str(&skeleton[copied..i]);
                    out.push_str(TO);
                    copied = end;
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&skeleton[copied..]);
    out
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'@' || c >= 0x80
}

/// The operation of a whole statement: [`classify`], except that a MySQL
/// query writing `INTO OUTFILE` / `INTO DUMPFILE` anywhere (after a
/// parenthesised query, `TABLE t`, `VALUES …`) exports to a server file.
fn classify_statement(toks: &[Token<'_>], dialect: Dialect) -> Operation {
    let op = classify(toks, dialect, 0);
    if dialect == Dialect::MySql && op == Operation::Select && writes_server_file(toks) {
        Operation::CopyOut
    } else {
        op
    }
}

/// MySQL `INTO OUTFILE` / `INTO DUMPFILE` anywhere in `toks`.
pub(crate) fn writes_server_file(toks: &[Token<'_>]) -> bool {
    toks.windows(2)
        .any(|w| w[0].is_word("into") && (w[1].is_word("outfile") || w[1].is_word("dumpfile")))
}

fn sort_dedup(v: &mut Vec<String>) {
    v.sort_unstable();
    v.dedup();
}

/// Tables, functions, a possible splitter disagreement and the statement's
/// [`Shape`] from sqlparser's AST of `stmt`, or why it could not parse.
///
/// sqlparser bounds its recursion by count, not by stack: 49 nested
/// `EXPLAIN`s take ~0.9 MiB of stack in a release build (~3.7 MiB in a
/// debug one), half of a tokio worker's 2 MiB. So parsing, walking and
/// dropping the AST run on a fresh stack segment whenever less than
/// [`PARSE_STACK_RED_ZONE`] remains; on a shallow worker stack that costs
/// nothing. A parser panic is caught: attacker-chosen text must cost one
/// parse error, not the proxy process.
fn parse_and_collect(
    stmt: &str,
    opts: LexOptions,
) -> Result<(Objects, Option<Error>, Shape), Error> {
    let run = || {
        let ast = parse(stmt, opts.dialect)?;
        let (objects, shape) = collect(&ast, opts.dialect);
        match ast.len() {
            1 => Ok((objects, None, shape)),
            // The splitter and sqlparser disagree on where statements end:
            // keep what sqlparser found, but flag the statement.
            n if n > 1 => Ok((objects, Some(Error::StatementCount { parsed: n }), shape)),
            n => Err(Error::StatementCount { parsed: n }),
        }
    };
    // sqlparser builds `a + b + c …` and `x AND y AND …` as left-deep trees
    // without counting them against its recursion limit, and walking or
    // dropping such a tree recurses once per operator: stack use grows with
    // the statement's length, not its nesting. So long statements get a
    // stack sized by their length (virtual memory, committed only as far as
    // it is used): 50 000 chained `+` needed ~5 MiB in a release build.
    let need = PARSE_STACK_SIZE.max(stmt.len().saturating_mul(STACK_BYTES_PER_SKELETON_BYTE));
    let red_zone = PARSE_STACK_RED_ZONE.max(need);
    stacker::maybe_grow(red_zone, need, || {
        catch_unwind(AssertUnwindSafe(run)).unwrap_or(Err(Error::ParserPanicked))
    })
}

fn parse(stmt: &str, dialect: Dialect) -> Result<Vec<Statement>, Error> {
    let result = match dialect {
        Dialect::Postgres => Parser::new(&PostgreSqlDialect {})
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .try_with_sql(stmt)
            .and_then(|mut p| p.parse_statements()),
        Dialect::MySql => Parser::new(&MySqlDialect {})
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .try_with_sql(stmt)
            .and_then(|mut p| p.parse_statements()),
    };
    result.map_err(|e| {
        let msg = e.to_string();
        Error::Parse(
            msg.strip_prefix("sql parser error: ")
                .unwrap_or(&msg)
                .to_string(),
        )
    })
}

/// sqlparser's messages end with a position in the skeleton, which means
/// nothing to a reader of the original statement: drop it, and bound the
/// length (the message lands in audit records). The skeleton holds no
/// literal values, so neither can the message.
fn sanitize_error(msg: &str) -> String {
    let mut out = msg.split(" at Line: ").next().unwrap_or(msg).to_string();
    if out.len() > MAX_PARSE_ERROR_LEN {
        let mut cut = MAX_PARSE_ERROR_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

// ---------------------------------------------------------------------------
// Operation from leading keywords
// ---------------------------------------------------------------------------

/// The operation of the statement in `toks` (significant tokens only).
fn classify(toks: &[Token<'_>], dialect: Dialect, depth: usize) -> Operation {
    if depth > MAX_CLASSIFY_DEPTH {
        return Operation::Unknown;
    }
    let Some(first) = toks.first() else {
        return Operation::Empty;
    };
    if first.kind == TokenKind::LParen {
        let end = skip_group(toks, 0);
        return classify(group_inner(toks, 0, end), dialect, depth + 1);
    }
    if first.kind != TokenKind::Word {
        return Operation::Unknown;
    }
    let mysql = dialect == Dialect::MySql;
    let w = |i: usize, kw: &str| is_word(toks, i, kw);
    let mut buf = [0u8; 16];
    match lower(first.text, &mut buf) {
        "select" => select_operation(toks, dialect),
        "values" | "table" | "declare" => Operation::Select,
        "with" => with_operation(toks, dialect, depth),
        "insert" => Operation::Insert,
        "replace" if mysql => Operation::Insert,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        "merge" => Operation::Merge,
        "copy" => copy_operation(toks, dialect, depth),
        "create" => {
            let mut i = 1;
            while toks
                .get(i)
                .is_some_and(|t| CREATE_MODIFIERS.iter().any(|m| t.is_word(m)))
            {
                i += 1;
            }
            role_or(toks, i, Operation::Ddl)
        }
        "alter" if w(1, "default") && w(2, "privileges") => Operation::Dcl,
        "alter" => role_or(toks, 1, Operation::Ddl),
        "drop" if w(1, "owned") => Operation::Dcl,
        "drop" => role_or(toks, 1, Operation::Ddl),
        "truncate" | "import" | "rename" => Operation::Ddl,
        "grant" | "revoke" | "reassign" => Operation::Dcl,
        "prepare" if w(1, "transaction") => Operation::Transaction,
        "prepare" => Operation::Prepare,
        // MariaDB's anonymous block runs any statements.
        "begin" if mysql && w(1, "not") => Operation::Unknown,
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release"
        | "xa" => Operation::Transaction,
        "execute" => Operation::Execute,
        "deallocate" => Operation::Deallocate,
        "set" => set_operation(toks),
        "reset" if w(1, "role") || (w(1, "session") && w(2, "authorization")) => Operation::Dcl,
        "reset" | "discard" | "use" => Operation::Set,
        "show" => Operation::Show,
        "describe" | "desc" if mysql => {
            if DML_VERBS.iter().any(|v| w(1, v)) {
                Operation::Explain
            } else {
                Operation::Show
            }
        }
        "explain" => explain_operation(toks, dialect, depth),
        "call" => Operation::Call,
        "do" => Operation::Do,
        "listen" | "unlisten" => Operation::Listen,
        "notify" => Operation::Notify,
        "load" if mysql && (w(1, "data") || w(1, "xml")) => Operation::CopyIn,
        "vacuum" | "analyze" | "analyse" | "checkpoint" | "reindex" | "cluster" | "load"
        | "fetch" | "move" | "close" | "comment" | "security" | "refresh" | "lock" => {
            Operation::Utility
        }
        "unlock" | "flush" | "kill" | "optimize" | "repair" | "check" | "checksum" | "handler"
        | "install" | "uninstall" | "purge" | "cache" | "binlog" | "shutdown"
            if mysql =>
        {
            Operation::Utility
        }
        _ => Operation::Unknown,
    }
}

/// Words that may sit between CREATE and the object kind.
const CREATE_MODIFIERS: &[&str] = &[
    "or",
    "replace",
    "temp",
    "temporary",
    "local",
    "global",
    "unlogged",
    "trusted",
    "procedural",
    "unique",
    "default",
    "constraint",
    "recursive",
    "definer",
    "algorithm",
    "sql",
    "security",
];

/// Statements that `DESCRIBE` (MySQL) explains rather than lists columns of.
const DML_VERBS: &[&str] = &[
    "select", "insert", "update", "delete", "replace", "with", "table",
];

/// `otherwise`, unless the word at `i` is ROLE/USER/GROUP (Dcl), where
/// `USER MAPPING` is a foreign-data object (Ddl).
fn role_or(toks: &[Token<'_>], i: usize, otherwise: Operation) -> Operation {
    if is_word(toks, i, "user") && is_word(toks, i + 1, "mapping") {
        otherwise
    } else if ["role", "user", "group"]
        .iter()
        .any(|w| is_word(toks, i, w))
    {
        Operation::Dcl
    } else {
        otherwise
    }
}

fn select_operation(toks: &[Token<'_>], dialect: Dialect) -> Operation {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => depth = depth.saturating_sub(1),
            TokenKind::Word if depth == 0 && t.is_word("into") => {
                return match dialect {
                    Dialect::Postgres => Operation::Ddl,
                    Dialect::MySql
                        if is_word(toks, i + 1, "outfile") || is_word(toks, i + 1, "dumpfile") =>
                    {
                        Operation::CopyOut
                    }
                    Dialect::MySql => Operation::Select,
                };
            }
            _ => {}
        }
    }
    Operation::Select
}

/// `WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (…) [SEARCH …]
/// [CYCLE …], … main`.
fn with_operation(toks: &[Token<'_>], dialect: Dialect, depth: usize) -> Operation {
    let mut i = 1;
    if is_word(toks, i, "recursive") {
        i += 1;
    }
    let mut strongest = Operation::Select;
    loop {
        if !toks
            .get(i)
            .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
        {
            return Operation::Unknown;
        }
        i += 1;
        if kind_at(toks, i) == Some(TokenKind::LParen) {
            i = skip_group(toks, i);
        }
        if !is_word(toks, i, "as") {
            return Operation::Unknown;
        }
        i += 1;
        if is_word(toks, i, "not") {
            i += 1;
        }
        if is_word(toks, i, "materialized") {
            i += 1;
        }
        if kind_at(toks, i) != Some(TokenKind::LParen) {
            return Operation::Unknown;
        }
        let end = skip_group(toks, i);
        let cte = classify(group_inner(toks, i, end), dialect, depth + 1);
        if cte.write_rank() > strongest.write_rank() {
            strongest = cte;
        }
        i = end;
        // SEARCH … SET col / CYCLE … SET col [TO v DEFAULT v] USING col
        loop {
            let until = if is_word(toks, i, "search") {
                "set"
            } else if is_word(toks, i, "cycle") {
                "using"
            } else {
                break;
            };
            match (i..toks.len()).find(|&j| is_word(toks, j, until)) {
                Some(j) => i = j + 2,
                None => return Operation::Unknown,
            }
        }
        if kind_at(toks, i) == Some(TokenKind::Comma) {
            i += 1;
            continue;
        }
        break;
    }
    match classify(toks.get(i..).unwrap_or(&[]), dialect, depth + 1) {
        // A WITH clause and nothing to run it for.
        Operation::Empty => Operation::Unknown,
        main => stronger_of(main, strongest),
    }
}

/// `main`, unless a statement nested in it is a more destructive write.
fn stronger_of(main: Operation, nested: Operation) -> Operation {
    let main_is_dml = main == Operation::Select || main.write_rank() > 0;
    if main_is_dml && nested.write_rank() > main.write_rank() {
        nested
    } else {
        main
    }
}

/// `COPY [BINARY] name [(cols)] FROM|TO …` or `COPY (query) TO …`.
fn copy_operation(toks: &[Token<'_>], dialect: Dialect, depth: usize) -> Operation {
    let mut i = 1;
    if is_word(toks, i, "binary") {
        i += 1;
    }
    let mut nested = Operation::Select;
    if kind_at(toks, i) == Some(TokenKind::LParen) {
        let end = skip_group(toks, i);
        nested = classify(group_inner(toks, i, end), dialect, depth + 1);
        i = end;
    } else {
        i = skip_name(toks, i);
        if kind_at(toks, i) == Some(TokenKind::LParen) {
            i = skip_group(toks, i);
        }
    }
    let direction = if is_word(toks, i, "from") {
        Operation::CopyIn
    } else if is_word(toks, i, "to") {
        Operation::CopyOut
    } else {
        return Operation::Unknown;
    };
    if nested.write_rank() > 0 {
        nested
    } else {
        direction
    }
}

/// `SET …`: roles and session authorization are access control,
/// transaction characteristics are transaction control, the rest is
/// configuration.
fn set_operation(toks: &[Token<'_>]) -> Operation {
    let mut i = 1;
    if is_word(toks, i, "session") || is_word(toks, i, "local") {
        i += 1;
    }
    let w = |kw: &str| is_word(toks, i, kw);
    if w("role")
        || w("authorization")
        || w("password")
        || (w("default") && is_word(toks, i + 1, "role"))
    {
        Operation::Dcl
    } else if w("transaction") || w("constraints") || w("characteristics") {
        Operation::Transaction
    } else {
        Operation::Set
    }
}

/// `EXPLAIN [ANALYZE] [VERBOSE] stmt` or `EXPLAIN (opts) stmt`: EXPLAIN
/// ANALYZE executes a data-modifying statement, so that is what it is.
fn explain_operation(toks: &[Token<'_>], dialect: Dialect, depth: usize) -> Operation {
    let mut i = 1;
    let mut analyze = false;
    if kind_at(toks, i) == Some(TokenKind::LParen) {
        let end = skip_group(toks, i);
        let opts = group_inner(toks, i, end);
        for (j, t) in opts.iter().enumerate() {
            if t.is_word("analyze") || t.is_word("analyse") {
                // Only the words FALSE/OFF switch it off: a literal (`0`,
                // `'off'`) normalises to `?`, and facts must not depend on
                // what the fingerprint hides, so it counts as on.
                let off = opts
                    .get(j + 1)
                    .is_some_and(|v| v.is_word("false") || v.is_word("off"));
                analyze = !off;
            }
        }
        i = end;
    } else {
        while ["analyze", "analyse", "verbose"]
            .iter()
            .any(|w| is_word(toks, i, w))
        {
            analyze |= !is_word(toks, i, "verbose");
            i += 1;
        }
    }
    let inner = classify(toks.get(i..).unwrap_or(&[]), dialect, depth + 1);
    if analyze && inner.write_rank() > 0 {
        inner
    } else {
        Operation::Explain
    }
}

pub(crate) fn is_word(toks: &[Token<'_>], i: usize, kw: &str) -> bool {
    toks.get(i).is_some_and(|t| t.is_word(kw))
}

pub(crate) fn kind_at(toks: &[Token<'_>], i: usize) -> Option<TokenKind> {
    toks.get(i).map(|t| t.kind)
}

/// ASCII-lowercased `word` in `buf`, or "" when longer than `buf` (no
/// keyword is).
fn lower<'b>(word: &str, buf: &'b mut [u8; 16]) -> &'b str {
    let Some(dst) = buf.get_mut(..word.len()) else {
        return "";
    };
    dst.copy_from_slice(word.as_bytes());
    dst.make_ascii_lowercase();
    std::str::from_utf8(dst).unwrap_or("")
}

/// Index just past the bracket group opening at `open` (or the end).
pub(crate) fn skip_group(toks: &[Token<'_>], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RParen | TokenKind::RBracket => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// The tokens between the bracket at `open` and its match (`end` from
/// [`skip_group`]).
fn group_inner<'t, 'a>(toks: &'t [Token<'a>], open: usize, end: usize) -> &'t [Token<'a>] {
    let closed = end > open + 1
        && toks
            .get(end - 1)
            .is_some_and(|t| matches!(t.kind, TokenKind::RParen | TokenKind::RBracket));
    let stop = if closed { end - 1 } else { end };
    toks.get(open + 1..stop).unwrap_or(&[])
}

/// Index past a possibly qualified name (`a`, `"A".b`) starting at `i`.
pub(crate) fn skip_name(toks: &[Token<'_>], mut i: usize) -> usize {
    while matches!(
        kind_at(toks, i),
        Some(TokenKind::Word | TokenKind::QuotedIdent)
    ) {
        i += 1;
        if kind_at(toks, i) != Some(TokenKind::Dot) {
            break;
        }
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------
// Tables and functions from the AST
// ---------------------------------------------------------------------------

/// Relations and called functions of one statement, unsorted.
#[derive(Debug, Default)]
struct Objects {
    tables: Vec<String>,
    functions: Vec<String>,
}

fn collect(ast: &[Statement], dialect: Dialect) -> (Objects, Shape) {
    let mut c = Collector {
        dialect,
        shape: ShapeCollector::new(dialect),
        ..Collector::default()
    };
    for stmt in ast {
        // The visitor never breaks.
        let _ = stmt.visit(&mut c);
    }
    let objects = Objects {
        tables: c.tables,
        functions: c.functions,
    };
    (objects, c.shape.finish(ast))
}

/// The CTEs of one WITH clause, and how many of them are visible where the
/// visitor is now.
///
/// Lookups are hashed: a statement of [`MAX_ANALYZED_LEN`] can hold tens
/// of thousands of CTEs and relations, and a linear scan per relation would
/// make one statement cost seconds.
struct CteScope {
    owner: usize,
    /// CTE name → position in the WITH list (the first, if repeated).
    names: HashMap<String, usize>,
    /// Address of each CTE's query → its position.
    queries: HashMap<usize, usize>,
    recursive: bool,
    /// CTEs `0..visible` are in scope.
    visible: usize,
}

impl CteScope {
    fn enter_cte(&mut self, q: &Query, leaving: bool) {
        if let Some(&idx) = self.queries.get(&addr(q)) {
            // Non-recursive: a CTE sees the ones before it, the main query
            // sees all. Recursive: every CTE sees every other.
            self.visible = if self.recursive {
                usize::MAX
            } else if leaving {
                idx + 1
            } else {
                idx
            };
        }
    }

    fn hides(&self, name: &str) -> bool {
        self.names.get(name).is_some_and(|&idx| idx < self.visible)
    }
}

/// A node's address, as its identity while the AST is borrowed.
fn addr<T>(node: &T) -> usize {
    node as *const T as usize
}

/// Walks an AST collecting relations and called functions. Node addresses
/// serve only as identities while the AST is borrowed.
#[derive(Default)]
struct Collector {
    dialect: Dialect,
    tables: Vec<String>,
    functions: Vec<String>,
    scopes: Vec<CteScope>,
    /// Names of table functions (`FROM generate_series(…)`), which the
    /// relation hook also sees.
    not_relations: HashSet<usize>,
    /// DML targets: PostgreSQL never resolves these to a CTE.
    targets: HashSet<usize>,
    /// Columns, `*` reads, write bounds and signals, gathered on the same walk.
    shape: ShapeCollector,
}

impl Collector {
    fn is_cte(&self, name: &ObjectName) -> bool {
        let [part] = name.0.as_slice() else {
            return false;
        };
        let Some(ident) = part.as_ident() else {
            return false;
        };
        let n = ident_name(ident);
        self.scopes.iter().any(|s| s.hides(&n))
    }

    fn add_table(&mut self, name: &ObjectName) {
        self.tables.push(object_name(name));
    }

    /// `TABLE t` bodies, which sqlparser keeps as plain identifiers rather
    /// than relations.
    fn set_expr_tables(&mut self, body: &SetExpr) {
        let mut stack = vec![body];
        while let Some(e) = stack.pop() {
            match e {
                SetExpr::Table(t) => {
                    let Some(table) = &t.table_name else { continue };
                    let name: ObjectName = match &t.schema_name {
                        Some(schema) => vec![schema.clone(), table.clone()].into(),
                        None => table.clone().into(),
                    };
                    if !self.is_cte(&name) {
                        self.add_table(&name);
                    }
                }
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(left);
                    stack.push(right);
                }
                _ => {}
            }
        }
    }

    fn target(&mut self, factor: &TableFactor) {
        if let TableFactor::Table { name, .. } = factor {
            self.targets.insert(addr(name));
        }
    }
}

impl Visitor for Collector {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> std::ops::ControlFlow<()> {
        if let Some(scope) = self.scopes.last_mut() {
            scope.enter_cte(q, false);
        }
        if let Some(with) = &q.with {
            let mut names = HashMap::with_capacity(with.cte_tables.len());
            let mut queries = HashMap::with_capacity(with.cte_tables.len());
            for (i, cte) in with.cte_tables.iter().enumerate() {
                names.entry(ident_name(&cte.alias.name)).or_insert(i);
                queries.insert(addr(&*cte.query), i);
            }
            self.scopes.push(CteScope {
                owner: addr(q),
                visible: if with.recursive { usize::MAX } else { 0 },
                names,
                queries,
                recursive: with.recursive,
            });
        }
        self.set_expr_tables(&q.body);
        self.shape.query(q);
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> std::ops::ControlFlow<()> {
        if self.scopes.last().is_some_and(|s| s.owner == addr(q)) {
            self.scopes.pop();
        }
        if let Some(scope) = self.scopes.last_mut() {
            scope.enter_cte(q, true);
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> std::ops::ControlFlow<()> {
        if self.not_relations.contains(&addr(name)) {
            return std::ops::ControlFlow::Continue(());
        }
        let forced = self.targets.contains(&addr(name));
        if forced || !self.is_cte(name) {
            self.add_table(name);
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> std::ops::ControlFlow<()> {
        self.shape.table_factor(factor);
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                self.functions.push(object_name(name));
                self.not_relations.insert(addr(name));
            }
            TableFactor::Function { name, .. } => self.functions.push(object_name(name)),
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
        self.shape.expr(expr);
        if let Expr::Function(f) = expr {
            self.functions.push(object_name(&f.name));
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> std::ops::ControlFlow<()> {
        self.shape.select(select);
        // PostgreSQL's SELECT … INTO creates the table; MySQL's INTO names
        // variables or files.
        if let (Dialect::Postgres, Some(into)) = (self.dialect, &select.into) {
            for target in &into.targets {
                match target {
                    Expr::Identifier(id) => self.add_table(&id.clone().into()),
                    Expr::CompoundIdentifier(ids) => self.add_table(&ids.clone().into()),
                    _ => {}
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, stmt: &Statement) -> std::ops::ControlFlow<()> {
        self.shape.statement(stmt);
        match stmt {
            Statement::Insert(ins) => {
                if let TableObject::TableName(name) = &ins.table {
                    self.targets.insert(addr(name));
                }
            }
            Statement::Update(u) => self.target(&u.table.relation),
            Statement::Delete(d) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                for t in from {
                    self.target(&t.relation);
                }
                for name in &d.tables {
                    self.add_table(name);
                }
            }
            Statement::Merge(m) => self.target(&m.table),
            // Relations sqlparser's visitor does not report as such.
            Statement::Drop {
                object_type:
                    ObjectType::Table
                    | ObjectType::View
                    | ObjectType::MaterializedView
                    | ObjectType::ForeignTable,
                names,
                ..
            } => {
                for name in names {
                    self.add_table(name);
                }
            }
            Statement::Grant(g) => self.grant_objects(g.objects.as_ref()),
            Statement::Revoke(r) => self.grant_objects(r.objects.as_ref()),
            Statement::Copy {
                source: CopySource::Table { table_name, .. },
                ..
            } => self.add_table(table_name),
            Statement::Comment {
                object_type:
                    CommentObject::Table
                    | CommentObject::View
                    | CommentObject::MaterializedView
                    | CommentObject::ForeignTable,
                object_name,
                ..
            } => self.add_table(object_name),
            Statement::Vacuum(v) => {
                if let Some(name) = &v.table_name {
                    self.add_table(name);
                }
            }
            Statement::LockTables { tables } => {
                for t in tables {
                    self.add_table(&t.table.clone().into());
                }
            }
            Statement::Call(f) => self.functions.push(object_name(&f.name)),
            Statement::ShowCreate {
                obj_type: ShowCreateObject::Table | ShowCreateObject::View,
                obj_name,
            } => self.add_table(obj_name),
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, stmt: &Statement) -> std::ops::ControlFlow<()> {
        self.shape.post_statement(stmt);
        std::ops::ControlFlow::Continue(())
    }
}

impl Collector {
    fn grant_objects(&mut self, objects: Option<&GrantObjects>) {
        if let Some(GrantObjects::Tables(names) | GrantObjects::Views(names)) = objects {
            for name in names {
                self.add_table(name);
            }
        }
    }
}

/// Unquoted: ASCII lower-cased, as PostgreSQL folds it. Quoted: verbatim.
fn ident_name(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

fn object_name(name: &ObjectName) -> String {
    let mut out = String::new();
    for (i, part) in name.0.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match part {
            ObjectNamePart::Identifier(ident) => out.push_str(&ident_name(ident)),
            ObjectNamePart::Function(f) => out.push_str(&f.to_string().to_ascii_lowercase()),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tables and functions without an AST
// ---------------------------------------------------------------------------

/// Words that open a statement inside parentheses (a subquery, or COPY's
/// query): relation names inside it count.
const QUERY_STARTS: &[&str] = &[
    "select", "with", "values", "table", "insert", "update", "delete", "merge",
];
/// Words after which a name is a relation.
const RELATION_INTRO: &[&str] = &["from", "join", "into", "update", "table"];
/// Words that follow a relation-introducing word but are not relations.
const NOT_RELATIONS: &[&str] = &[
    "select",
    "values",
    "with",
    "lateral",
    "only",
    "set",
    "of",
    "nowait",
    "skip",
    "cascade",
    "restrict",
    "no",
    "stdin",
    "stdout",
    "outfile",
    "dumpfile",
    "unnest",
    "rows",
    "if",
    "not",
    "exists",
    "program",
    "temp",
    "temporary",
    "unlogged",
    "local",
    "where",
    "as",
    "default",
    "concurrently",
];
/// Option words those leaders accept before the names.
const LEADER_OPTIONS: &[&str] = &[
    "full",
    "freeze",
    "verbose",
    "analyze",
    "analyse",
    "table",
    "only",
    "binary",
    "concurrently",
];
/// Words that precede `(` without being calls.
const NOT_FUNCTIONS: &[&str] = &[
    "in",
    "values",
    "exists",
    "as",
    "on",
    "using",
    "over",
    "filter",
    "within",
    "any",
    "all",
    "some",
    "not",
    "and",
    "or",
    "select",
    "from",
    "where",
    "join",
    "table",
    "into",
    "key",
    "unique",
    "check",
    "references",
    "returns",
    "cast",
    "extract",
    "row",
    "array",
    "lateral",
    "do",
    "conflict",
    "with",
    "union",
    "intersect",
    "except",
    "by",
    "having",
    "set",
    "default",
    "when",
    "then",
    "else",
    "case",
    "is",
    "distinct",
    "vacuum",
    "analyze",
    "analyse",
    "explain",
    "reindex",
    "cluster",
    "options",
    "partition",
    "rollup",
    "cube",
    "returning",
    "window",
    "copy",
    "to",
    "like",
    "ilike",
    "between",
    "primary",
    "foreign",
    "include",
    "tablespace",
    "owned",
];
/// Words after which `name (` declares or targets an object.
const DECLARING: &[&str] = &[
    "table",
    "into",
    "on",
    "references",
    "function",
    "procedure",
    "index",
    "view",
    "type",
    "trigger",
    "aggregate",
    "exists",
    "only",
    "copy",
    "vacuum",
    "analyze",
    "analyse",
    "cluster",
    "lock",
    "truncate",
    "schema",
    "sequence",
    "domain",
    "operator",
    "cursor",
    "routine",
    "update",
];

/// Best-effort relations and calls for a statement sqlparser rejected:
/// names after FROM/JOIN/INTO/UPDATE/TABLE in query context (not inside a
/// call's parentheses, so `extract(year from ts)` is no table), the name
/// lists of VACUUM/ANALYZE/CLUSTER/LOCK/TRUNCATE/COPY/REINDEX TABLE/
/// REFRESH MATERIALIZED VIEW, and every non-keyword name followed by `(`.
/// Also marks which tokens it read as relation names or their aliases (so
/// the fallback column scan can skip them).
fn keyword_scan(toks: &[Token<'_>]) -> (Objects, Vec<bool>) {
    let mut tables = Vec::new();
    let mut functions = Vec::new();
    // Marks the `(` that open a relation's column list, not a call.
    let mut column_lists = vec![false; toks.len()];
    let mut relation_tokens = vec![false; toks.len()];
    let mut found = NameList {
        out: &mut tables,
        marks: &mut relation_tokens,
    };
    leader_names(toks, &mut found, &mut column_lists);
    // Relations in query context; calls anywhere.
    let mut query_context = vec![true];
    for (j, t) in toks.iter().enumerate() {
        match t.kind {
            TokenKind::LParen => {
                let query = QUERY_STARTS.iter().any(|w| is_word(toks, j + 1, w));
                query_context.push(query);
                if column_lists.get(j) == Some(&true) {
                    continue;
                }
                if let Some(name) = called_name(toks, j) {
                    functions.push(name);
                }
            }
            TokenKind::RParen if query_context.len() > 1 => {
                query_context.pop();
            }
            TokenKind::Word
                if query_context.last() == Some(&true)
                    && RELATION_INTRO.iter().any(|w| t.is_word(w)) =>
            {
                let mut k = j + 1;
                while ["only", "if", "not", "exists"]
                    .iter()
                    .any(|w| is_word(toks, k, w))
                {
                    k += 1;
                }
                // `FROM f(x)` calls f; `INTO t (a, b)` lists t's columns.
                let columns = !(t.is_word("from") || t.is_word("join"));
                let lists = columns.then_some(column_lists.as_mut_slice());
                read_name_list(toks, k, lists, &mut found);
            }
            _ => {}
        }
    }
    (Objects { tables, functions }, relation_tokens)
}

/// Where [`read_name_list`] puts the names it reads, and the tokens it
/// marks as read (relation names and aliases).
struct NameList<'o> {
    out: &'o mut Vec<String>,
    marks: &'o mut [bool],
}

impl NameList<'_> {
    fn mark(&mut self, from: usize, to: usize) {
        if let Some(m) = self.marks.get_mut(from..to.min(self.marks.len())) {
            m.fill(true);
        }
    }
}

/// The relations named right after the options of a maintenance statement.
fn leader_names(toks: &[Token<'_>], tables: &mut NameList<'_>, column_lists: &mut [bool]) {
    let lead = |w: &str| is_word(toks, 0, w);
    let mut i = 1;
    if lead("copy") {
        if kind_at(toks, 1) == Some(TokenKind::LParen) {
            return;
        }
        if is_word(toks, 1, "binary") {
            i = 2;
        }
    } else if [
        "vacuum", "analyze", "analyse", "cluster", "lock", "truncate",
    ]
    .iter()
    .any(|w| lead(w))
    {
        loop {
            if kind_at(toks, i) == Some(TokenKind::LParen) {
                i = skip_group(toks, i);
            } else if LEADER_OPTIONS.iter().any(|w| is_word(toks, i, w)) {
                i += 1;
            } else {
                break;
            }
        }
    } else if lead("reindex") {
        if kind_at(toks, i) == Some(TokenKind::LParen) {
            i = skip_group(toks, i);
        }
        if !is_word(toks, i, "table") {
            return;
        }
        i += 1;
        if is_word(toks, i, "concurrently") {
            i += 1;
        }
    } else if lead("refresh") {
        while ["materialized", "view", "concurrently"]
            .iter()
            .any(|w| is_word(toks, i, w))
        {
            i += 1;
        }
    } else {
        return;
    }
    read_name_list(toks, i, Some(column_lists), tables);
}

/// Reads `name [(columns)] [[AS] alias] [, name …]` from `i` into `out`,
/// noting where column lists open in `column_lists`. Without
/// `column_lists`, a name followed by `(` is a call and ends the list.
fn read_name_list(
    toks: &[Token<'_>],
    mut i: usize,
    mut column_lists: Option<&mut [bool]>,
    out: &mut NameList<'_>,
) {
    loop {
        let end = skip_name(toks, i);
        let call = kind_at(toks, end) == Some(TokenKind::LParen) && column_lists.is_none();
        // An introducing keyword ends the list, so every token is read by
        // at most one list and the scan stays linear.
        let keyword = NOT_RELATIONS
            .iter()
            .chain(RELATION_INTRO)
            .any(|w| is_word(toks, i, w));
        if end == i || call || keyword {
            return;
        }
        out.out.push(token_name(toks.get(i..end).unwrap_or(&[])));
        out.mark(i, end);
        i = end;
        if kind_at(toks, i) == Some(TokenKind::LParen) {
            if let Some(mark) = column_lists.as_deref_mut().and_then(|m| m.get_mut(i)) {
                *mark = true;
            }
            i = skip_group(toks, i);
        }
        if is_word(toks, i, "as") {
            i += 1;
        }
        if kind_at(toks, i) == Some(TokenKind::Word)
            && !RELATION_INTRO
                .iter()
                .chain(NOT_FUNCTIONS)
                .any(|w| is_word(toks, i, w))
        {
            out.mark(i, i + 1);
            i += 1;
        }
        if kind_at(toks, i) != Some(TokenKind::Comma) {
            return;
        }
        i += 1;
    }
}

/// The (possibly qualified) name called by the `(` at `paren`, if it is a
/// call: a name right before it that is neither a keyword nor declared.
fn called_name(toks: &[Token<'_>], paren: usize) -> Option<String> {
    let last = paren.checked_sub(1)?;
    let t = toks.get(last)?;
    match t.kind {
        TokenKind::Word if !NOT_FUNCTIONS.iter().any(|w| t.is_word(w)) => {}
        TokenKind::QuotedIdent => {}
        _ => return None,
    }
    let mut first = last;
    while first >= 2
        && kind_at(toks, first - 1) == Some(TokenKind::Dot)
        && matches!(
            kind_at(toks, first - 2),
            Some(TokenKind::Word | TokenKind::QuotedIdent)
        )
    {
        first -= 2;
    }
    let declared = first > 0
        && DECLARING.iter().any(|w| is_word(toks, first - 1, w))
        // `CREATE INDEX i ON t (a)` declares; `JOIN t ON f(x)` calls.
        && (!is_word(toks, first - 1, "on") || is_word(toks, 0, "create"));
    if declared {
        return None;
    }
    Some(token_name(toks.get(first..paren)?))
}

/// A name from tokens `a . "B" . c`, normalised like AST names.
pub(crate) fn token_name(toks: &[Token<'_>]) -> String {
    let mut out = String::new();
    for t in toks {
        match t.kind {
            TokenKind::Word => out.push_str(&t.text.to_ascii_lowercase()),
            TokenKind::QuotedIdent => out.push_str(&unquote(t.text)),
            TokenKind::Dot => out.push('.'),
            _ => {}
        }
    }
    out
}

/// `"a""b"` → `a"b`, `` `a``b` `` → ``a`b``, `U&"x"` → `x` (escapes kept).
fn unquote(text: &str) -> String {
    let body = text
        .strip_prefix("U&")
        .or_else(|| text.strip_prefix("u&"))
        .unwrap_or(text);
    let Some(q) = body.chars().next() else {
        return String::new();
    };
    let inner = body.strip_prefix(q).unwrap_or(body);
    let inner = inner.strip_suffix(q).unwrap_or(inner);
    let doubled: String = [q, q].iter().collect();
    inner.replace(&doubled, &q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    use crate::lexer::test_options::{MY, PG};

    /// (statement, operation, tables) for PostgreSQL.
    const STATEMENTS: &[(&str, Operation, &[&str])] = &[
        // pgbench
        ("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", Select, &["pgbench_accounts"]),
        ("UPDATE pgbench_accounts SET abalance = abalance + -4037 WHERE aid = 77;", Update, &["pgbench_accounts"]),
        ("UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 3", Update, &["pgbench_tellers"]),
        ("UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1", Update, &["pgbench_branches"]),
        ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 77, -4037, CURRENT_TIMESTAMP);", Insert, &["pgbench_history"]),
        // queries
        ("select 1", Select, &[]),
        ("select now()", Select, &[]),
        ("select current_user", Select, &[]),
        ("SELECT * FROM users u JOIN orders o ON o.user_id = u.id", Select, &["orders", "users"]),
        ("select a.x from a left join b on a.id = b.id right join c using (id) full outer join d on true cross join e", Select, &["a", "b", "c", "d", "e"]),
        ("select * from a, b, c where a.id = b.id", Select, &["a", "b", "c"]),
        ("select * from a natural join b", Select, &["a", "b"]),
        ("select * from (select * from inner_t) s", Select, &["inner_t"]),
        ("select * from t where id in (select id from u where x > (select max(x) from v))", Select, &["t", "u", "v"]),
        ("select exists(select 1 from t)", Select, &["t"]),
        ("select * from t where exists (select 1 from u where u.id = t.id)", Select, &["t", "u"]),
        ("select (select count(*) from u) as c from t", Select, &["t", "u"]),
        ("select 1 from t where x in (1, 2, 3)", Select, &["t"]),
        ("select * from public.users", Select, &["public.users"]),
        ("select * from mydb.public.users", Select, &["mydb.public.users"]),
        ("select * from \"Users\"", Select, &["Users"]),
        ("select * from \"MySchema\".\"Users\"", Select, &["MySchema.Users"]),
        ("select * from MySchema.Users", Select, &["myschema.users"]),
        ("select * from \"weird\"\"name\"", Select, &["weird\"name"]),
        ("select * from über", Select, &["über"]),
        ("select * from \"表\"", Select, &["表"]),
        ("select * from Ärzte", Select, &["Ärzte"]),
        ("SELECT * FROM T", Select, &["t"]),
        ("Select * From Users Where Id = 1", Select, &["users"]),
        ("select * from only parent", Select, &["parent"]),
        ("select * from t1 union select * from t2", Select, &["t1", "t2"]),
        ("select * from t1 union all select * from t2 except select * from t3 intersect select * from t4", Select, &["t1", "t2", "t3", "t4"]),
        ("(select a from t1) union (select a from t2)", Select, &["t1", "t2"]),
        ("values (1, 2), (3, 4)", Select, &[]),
        ("table t", Select, &["t"]),
        ("TABLE public.t", Select, &["public.t"]),
        ("select * from generate_series(1, 10) g", Select, &[]),
        ("select * from t, lateral (select * from u where u.t_id = t.id) s", Select, &["t", "u"]),
        ("select * from t cross join lateral unnest(t.arr) as x", Select, &["t"]),
        ("select row_number() over (partition by dept order by salary desc) from emp", Select, &["emp"]),
        ("select sum(x) over w from t window w as (order by y)", Select, &["t"]),
        ("select dept, count(*) from emp group by dept having count(*) > 5 order by 2 limit 10 offset 5", Select, &["emp"]),
        ("select distinct on (a) a, b from t order by a, b", Select, &["t"]),
        ("select * from t for update", Select, &["t"]),
        ("select * from t for update of t skip locked", Select, &["t"]),
        ("select * from t tablesample system (10)", Select, &["t"]),
        ("select case when x > 0 then 'p' else 'n' end from t", Select, &["t"]),
        ("select x::int, cast(y as text) from t", Select, &["t"]),
        ("select t.* from t where t.data @> '{\"a\":1}'", Select, &["t"]),
        ("select * from t where name ilike '%x%' and id between 1 and 10", Select, &["t"]),
        ("select * from t where id = any($1)", Select, &["t"]),
        ("select pg_sleep(10)", Select, &[]),
        ("select pg_read_file('/etc/passwd')", Select, &[]),
        ("select * from pg_catalog.pg_tables", Select, &["pg_catalog.pg_tables"]),
        ("select * from information_schema.tables", Select, &["information_schema.tables"]),
        ("select * from t where a = 1 -- ; drop table x", Select, &["t"]),
        ("/* leading */ select * from t", Select, &["t"]),
        // CTEs
        ("with x as (select * from t) select * from x", Select, &["t"]),
        ("with x as (select * from t), y as (select * from x join u using (id)) select * from y", Select, &["t", "u"]),
        ("with recursive r(n) as (select 1 union all select n + 1 from r where n < 10) select * from r", Select, &[]),
        ("with recursive tree as (select id from nodes where parent is null union all select n.id from nodes n join tree on n.parent = tree.id) select * from tree", Select, &["nodes"]),
        // Non-recursive: the CTE body's `t` is the real table.
        ("with t as (select * from t) select * from t", Select, &["t"]),
        ("with salaries as (select 1 as x) select * from salaries", Select, &[]),
        // A CTE defined in a subquery does not hide the outer table.
        ("select * from accounts, (with accounts as (select 1) select * from accounts) s", Select, &["accounts"]),
        ("with x as materialized (select * from t) select * from x", Select, &["t"]),
        ("with x as not materialized (select * from t) select * from x", Select, &["t"]),
        ("with d as (delete from t where id = 1 returning *) select * from d", Delete, &["t"]),
        ("with d as (delete from old returning *) insert into archive select * from d", Delete, &["archive", "old"]),
        ("with u as (update t set x = 1 returning id) select count(*) from u", Update, &["t"]),
        ("with i as (insert into t (a) values (1) returning id) select * from i", Insert, &["t"]),
        ("with x as (select 1) insert into t select * from x", Insert, &["t"]),
        ("with x as (select id from src) update t set a = 1 from x where t.id = x.id", Update, &["src", "t"]),
        ("with x as (select id from src) delete from t using x where t.id = x.id", Delete, &["src", "t"]),
        // An INSERT target is never a CTE.
        ("with t as (select 1 as id) insert into t values (2)", Insert, &["t"]),
        // INSERT / UPDATE / DELETE / MERGE
        ("insert into t values (1)", Insert, &["t"]),
        ("insert into s.t (a, b) select a, b from u", Insert, &["s.t", "u"]),
        ("insert into t (a) values (1) on conflict (a) do update set b = excluded.b", Insert, &["t"]),
        ("insert into t (a) values (1) on conflict do nothing returning id", Insert, &["t"]),
        ("insert into t default values", Insert, &["t"]),
        ("INSERT INTO \"Audit\".\"Log\" (msg) VALUES ('x')", Insert, &["Audit.Log"]),
        ("update t set a = u.a from u where t.id = u.id", Update, &["t", "u"]),
        ("update only t set a = 1", Update, &["t"]),
        ("update t set (a, b) = (select a, b from u where u.id = t.id)", Update, &["t", "u"]),
        ("delete from t", Delete, &["t"]),
        ("delete from t using u where t.id = u.id", Delete, &["t", "u"]),
        ("delete from t where id in (select id from u)", Delete, &["t", "u"]),
        ("delete from t where id = 1 returning *", Delete, &["t"]),
        ("merge into target t using source s on t.id = s.id when matched then update set v = s.v when not matched then insert (id, v) values (s.id, s.v)", Merge, &["source", "target"]),
        ("merge into t using (select * from u) s on t.id = s.id when matched then delete", Merge, &["t", "u"]),
        // COPY
        ("copy t from stdin", CopyIn, &["t"]),
        ("COPY t (a, b) FROM STDIN WITH (FORMAT csv)", CopyIn, &["t"]),
        ("copy t from '/tmp/data.csv' csv header", CopyIn, &["t"]),
        ("copy t from program 'curl http://x'", CopyIn, &["t"]),
        ("copy t to stdout", CopyOut, &["t"]),
        ("copy s.t to '/tmp/out.csv' with (format csv)", CopyOut, &["s.t"]),
        ("copy (select * from t join u using (id)) to stdout", CopyOut, &["t", "u"]),
        ("copy (delete from t returning *) to stdout", Delete, &["t"]),
        ("copy binary t from stdin", CopyIn, &["t"]),
        // DDL
        ("create table t (id int primary key, name text not null)", Ddl, &["t"]),
        ("create table if not exists s.t (id int)", Ddl, &["s.t"]),
        ("create temp table tmp (x int)", Ddl, &["tmp"]),
        ("create unlogged table u (x int)", Ddl, &["u"]),
        ("create table t2 as select * from t1", Ddl, &["t1", "t2"]),
        ("alter table t add column c int", Ddl, &["t"]),
        ("alter table if exists s.t drop column c", Ddl, &["s.t"]),
        ("alter table t rename to t_old", Ddl, &["t"]),
        ("alter table t owner to bob", Ddl, &["t"]),
        ("alter table t enable row level security", Ddl, &["t"]),
        ("drop table t", Ddl, &["t"]),
        ("drop table if exists a, s.b cascade", Ddl, &["a", "s.b"]),
        ("drop view v", Ddl, &["v"]),
        ("drop materialized view mv", Ddl, &["mv"]),
        ("drop index idx_t_a", Ddl, &[]),
        ("create index idx on t (a)", Ddl, &["t"]),
        ("create unique index concurrently if not exists idx on s.t using btree (a, b)", Ddl, &["s.t"]),
        ("create view v as select a from t where b > 0", Ddl, &["t", "v"]),
        ("create or replace view v as select * from t", Ddl, &["t", "v"]),
        ("create materialized view mv as select count(*) from t", Ddl, &["mv", "t"]),
        ("create schema app", Ddl, &[]),
        ("create schema if not exists app authorization bob", Ddl, &[]),
        ("drop schema app cascade", Ddl, &[]),
        ("create extension if not exists pgcrypto", Ddl, &[]),
        ("drop extension pgcrypto", Ddl, &[]),
        ("create sequence s start 1", Ddl, &[]),
        ("alter sequence s restart with 1", Ddl, &[]),
        ("drop sequence s", Ddl, &[]),
        ("create type mood as enum ('sad', 'ok')", Ddl, &[]),
        ("drop type mood", Ddl, &[]),
        ("create function add(a int, b int) returns int as $$ select a + b $$ language sql", Ddl, &[]),
        ("create or replace function f() returns trigger language plpgsql as $body$ begin return new; end $body$", Ddl, &[]),
        ("CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + 1; END", Ddl, &[]),
        ("drop function if exists f(int)", Ddl, &[]),
        ("create procedure p() language sql as $$ insert into t values (1) $$", Ddl, &[]),
        ("drop procedure p", Ddl, &[]),
        ("truncate t", Ddl, &["t"]),
        ("truncate table only a, b restart identity cascade", Ddl, &["a", "b"]),
        ("alter system set work_mem = '64MB'", Ddl, &[]),
        ("create database d", Ddl, &[]),
        ("drop database d", Ddl, &[]),
        ("create domain posint as int check (value > 0)", Ddl, &[]),
        ("create policy p on t using (owner = current_user)", Ddl, &["t"]),
        ("create user mapping for bob server s options (user 'b')", Ddl, &[]),
        ("comment on table t is 'x'", Utility, &["t"]),
        ("comment on column t.c is 'x'", Utility, &[]),
        ("security label for selinux on table t is 'x'", Utility, &["t"]),
        // DCL
        ("grant select on t to bob", Dcl, &["t"]),
        ("grant select, insert on table s.t, u to bob, alice", Dcl, &["s.t", "u"]),
        ("grant all privileges on all tables in schema public to bob", Dcl, &[]),
        ("grant usage on schema app to bob", Dcl, &[]),
        ("grant admin to bob", Dcl, &[]),
        ("revoke select on t from bob", Dcl, &["t"]),
        ("revoke all on table t from public", Dcl, &["t"]),
        ("create role app login password 'secret'", Dcl, &[]),
        ("create user bob with password 'x'", Dcl, &[]),
        ("alter role bob superuser", Dcl, &[]),
        ("alter user bob with password 'y'", Dcl, &[]),
        ("drop role if exists bob", Dcl, &[]),
        ("drop user bob", Dcl, &[]),
        ("create group g", Dcl, &[]),
        ("alter default privileges in schema app grant select on tables to bob", Dcl, &[]),
        ("reassign owned by bob to alice", Dcl, &[]),
        ("drop owned by bob", Dcl, &[]),
        ("set role admin", Dcl, &[]),
        ("set local role admin", Dcl, &[]),
        ("set session authorization bob", Dcl, &[]),
        ("reset role", Dcl, &[]),
        ("reset session authorization", Dcl, &[]),
        // transaction control
        ("begin", Transaction, &[]),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", Transaction, &[]),
        ("start transaction read only", Transaction, &[]),
        ("commit", Transaction, &[]),
        ("commit and chain", Transaction, &[]),
        ("end", Transaction, &[]),
        ("rollback", Transaction, &[]),
        ("abort", Transaction, &[]),
        ("savepoint sp1", Transaction, &[]),
        ("release savepoint sp1", Transaction, &[]),
        ("rollback to savepoint sp1", Transaction, &[]),
        ("prepare transaction 'tx1'", Transaction, &[]),
        ("commit prepared 'tx1'", Transaction, &[]),
        ("rollback prepared 'tx1'", Transaction, &[]),
        ("set transaction isolation level repeatable read", Transaction, &[]),
        ("set constraints all deferred", Transaction, &[]),
        // SET / SHOW
        ("set search_path = app, public", Set, &[]),
        ("set statement_timeout to 0", Set, &[]),
        ("SET LOCAL work_mem = '1GB'", Set, &[]),
        ("set session timezone = 'UTC'", Set, &[]),
        ("set time zone 'UTC'", Set, &[]),
        ("reset all", Set, &[]),
        ("reset search_path", Set, &[]),
        ("discard all", Set, &[]),
        ("show search_path", Show, &[]),
        ("show all", Show, &[]),
        ("SHOW transaction_isolation", Show, &[]),
        // CALL / DO
        ("call p(1, 2)", Call, &[]),
        ("do $$ begin perform pg_sleep(1); end $$", Do, &[]),
        ("DO LANGUAGE plpgsql $body$ begin delete from t; end $body$", Do, &[]),
        // PREPARE / EXECUTE / DEALLOCATE
        ("prepare q(int) as select * from t where id = $1", Prepare, &["t"]),
        ("prepare ins as insert into t values ($1)", Prepare, &["t"]),
        ("execute q(1)", Execute, &[]),
        ("deallocate q", Deallocate, &[]),
        ("deallocate all", Deallocate, &[]),
        ("deallocate prepare q", Deallocate, &[]),
        // LISTEN / NOTIFY
        ("listen chan", Listen, &[]),
        ("unlisten *", Listen, &[]),
        ("notify chan, 'payload'", Notify, &[]),
        ("notify chan", Notify, &[]),
        // EXPLAIN
        ("explain select * from t", Explain, &["t"]),
        ("explain analyze select * from t join u using (id)", Explain, &["t", "u"]),
        ("explain (analyze, buffers) delete from t", Delete, &["t"]),
        ("explain analyze update t set a = 1", Update, &["t"]),
        ("explain (analyze false) delete from t", Explain, &["t"]),
        ("explain delete from t", Explain, &["t"]),
        ("explain (format json) select 1", Explain, &[]),
        ("EXPLAIN VERBOSE SELECT * FROM t", Explain, &["t"]),
        // utility
        ("vacuum", Utility, &[]),
        ("vacuum full verbose t", Utility, &["t"]),
        ("vacuum (verbose, analyze) s.t", Utility, &["s.t"]),
        ("VACUUM ANALYZE t (a, b)", Utility, &["t"]),
        ("analyze t", Utility, &["t"]),
        ("analyze", Utility, &[]),
        ("checkpoint", Utility, &[]),
        ("reindex table t", Utility, &["t"]),
        ("reindex (verbose) table concurrently s.t", Utility, &["s.t"]),
        ("reindex index idx", Utility, &[]),
        ("reindex database d", Utility, &[]),
        ("cluster t using idx", Utility, &["t"]),
        ("cluster", Utility, &[]),
        ("load 'auto_explain'", Utility, &[]),
        ("fetch 10 from c", Utility, &[]),
        ("fetch next in c", Utility, &[]),
        ("move forward 5 in c", Utility, &[]),
        ("close c", Utility, &[]),
        ("close all", Utility, &[]),
        ("refresh materialized view mv", Utility, &["mv"]),
        ("refresh materialized view concurrently s.mv", Utility, &["s.mv"]),
        ("lock table t in access exclusive mode", Utility, &["t"]),
        ("lock t, u", Utility, &["t", "u"]),
        // cursors run their query
        ("declare c cursor for select * from t", Select, &["t"]),
        ("declare c scroll cursor with hold for select a from t join u using (id)", Select, &["t", "u"]),
        // SELECT INTO creates a table
        ("select * into new_t from t", Ddl, &["new_t", "t"]),
        ("select a, b into temp tmp from t where x > 1", Ddl, &["t", "tmp"]),
        // unknown
        ("frobnicate the database", Unknown, &[]),
        ("42", Unknown, &[]),
    ];

    #[test]
    fn statement_table() {
        assert!(STATEMENTS.len() >= 150, "{} statements", STATEMENTS.len());
        let mut failures = Vec::new();
        for (sql, op, tables) in STATEMENTS {
            let facts = analyze(sql, PG);
            let got: Vec<_> = facts
                .iter()
                .map(|f| (f.operation, f.tables.clone()))
                .collect();
            let want = vec![(
                *op,
                tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            )];
            if got != want {
                failures.push(format!(
                    "{sql}\n    want {want:?}\n    got  {got:?}\n    parse_error {:?}",
                    facts.first().and_then(|f| f.parse_error.clone())
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn function_table() {
        let cases: &[(&str, &[&str])] = &[
            ("select pg_sleep(1)", &["pg_sleep"]),
            (
                "select count(*), max(a), lower(b) from t",
                &["count", "lower", "max"],
            ),
            ("select * from generate_series(1, 3)", &["generate_series"]),
            (
                "select pg_catalog.pg_read_file('x')",
                &["pg_catalog.pg_read_file"],
            ),
            ("select \"MyFunc\"(1)", &["MyFunc"]),
            ("SELECT PG_SLEEP(1)", &["pg_sleep"]),
            ("call p()", &["p"]),
            (
                "insert into t values (now(), gen_random_uuid())",
                &["gen_random_uuid", "now"],
            ),
            ("select 1 where exists (select 1)", &[]),
            (
                "update t set a = upper(a) where b = lo_import('/etc/passwd')",
                &["lo_import", "upper"],
            ),
            ("select * from t where x in (select f(y) from u)", &["f"]),
            (
                "with x as (select dblink('c', 'q')) select * from x",
                &["dblink"],
            ),
            (
                "select * from t where a = 1 order by random() limit 1",
                &["random"],
            ),
            ("do $$ begin perform pg_sleep(1); end $$", &[]),
            ("create table t (id int, d date default now())", &["now"]),
            (
                "create function f() returns int as $$ select pg_sleep(1) $$ language sql",
                &[],
            ),
        ];
        for (sql, want) in cases {
            let facts = analyze(sql, PG);
            assert_eq!(facts.len(), 1, "{sql}");
            assert_eq!(
                facts[0].functions, *want,
                "{sql}: {:?}",
                facts[0].parse_error
            );
        }
    }

    #[test]
    fn operation_table() {
        // Operation only (the keyword classifier), including forms whose
        // parse depends on sqlparser's coverage and MySQL.
        let cases: &[(&str, LexOptions, Operation)] = &[
            ("with recursive s(id) as (select 1 union all select id + 1 from s) search depth first by id set ord select * from s", PG, Select),
            ("with recursive s(id) as (select 1) cycle id set is_cycle using path delete from t", PG, Delete),
            ("with a as (insert into t values (1) returning 1), b as (delete from u returning 1) update v set x = 1", PG, Delete),
            ("with a as (select 1) select * into t2 from a", PG, Ddl),
            ("(((select 1)))", PG, Select),
            ("((delete from t))", PG, Delete),
            ("explain analyze with d as (delete from t returning 1) select * from d", PG, Delete),
            ("explain (analyze off) delete from t", PG, Explain),
            ("explain (analyze 0) delete from t", PG, Delete),
            ("explain (analyze on, verbose) insert into t values (1)", PG, Insert),
            ("copy (with d as (delete from t returning *) select * from d) to stdout", PG, Delete),
            ("copy t", PG, Unknown),
            ("with", PG, Unknown),
            ("with x as", PG, Unknown),
            ("with x as (select 1)", PG, Unknown),
            ("import foreign schema s from server srv into local_s", PG, Ddl),
            ("create or replace temp view v as select 1", PG, Ddl),
            ("create user mapping for bob server s", PG, Ddl),
            ("alter user mapping for bob server s options (set user 'x')", PG, Ddl),
            ("drop user mapping for bob server s", PG, Ddl),
            ("set session characteristics as transaction read only", PG, Transaction),
            ("set search_path to default", PG, Set),
            // MySQL
            ("replace into t values (1)", MY, Insert),
            ("load data infile '/tmp/x' into table t", MY, CopyIn),
            ("select * from t into outfile '/tmp/x'", MY, CopyOut),
            ("select a into @v from t", MY, Select),
            ("use shop", MY, Set),
            ("describe t", MY, Show),
            ("describe select * from t", MY, Explain),
            ("set password for bob = 'x'", MY, Dcl),
            ("lock tables t read", MY, Utility),
            ("flush privileges", MY, Utility),
            ("xa start 'x'", MY, Transaction),
            ("rename table a to b", MY, Ddl),
            ("flush privileges", PG, Unknown),
        ];
        for (sql, opts, want) in cases {
            let toks: Vec<_> = Lexer::new(sql, *opts)
                .filter(|t| t.kind.is_significant())
                .collect();
            assert_eq!(classify(&toks, opts.dialect, 0), *want, "{sql}");
        }
    }

    #[test]
    fn keyword_scan_table() {
        // The fallback used when sqlparser rejects a statement.
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("table t", &["t"], &[]),
            ("table only s.t", &["s.t"], &[]),
            (
                "vacuum (verbose, analyze) s.t (a, b), u",
                &["s.t", "u"],
                &[],
            ),
            ("vacuum full freeze t", &["t"], &[]),
            ("analyze verbose t", &["t"], &[]),
            ("cluster verbose t using idx", &["t"], &[]),
            ("lock table only a, b in share mode", &["a", "b"], &[]),
            ("truncate table a, \"B\" cascade", &["B", "a"], &[]),
            ("reindex (verbose) table concurrently t", &["t"], &[]),
            ("reindex index i", &[], &[]),
            ("refresh materialized view concurrently mv", &["mv"], &[]),
            ("copy t (a) from stdin", &["t"], &[]),
            ("copy (select * from t) to stdout", &["t"], &[]),
            ("copy (delete from t returning *) to stdout", &["t"], &[]),
            (
                "select extract(year from ts), f(x) from t1, t2 a join t3 on g(1)",
                &["t1", "t2", "t3"],
                &["f", "g"],
            ),
            (
                "select * from generate_series(1, 2) s, pg_catalog.pg_sleep(1)",
                &[],
                &["generate_series", "pg_catalog.pg_sleep"],
            ),
            ("select * from stdin", &[], &[]),
            ("insert into t (a, b) values (now(), 1)", &["t"], &["now"]),
            (
                "create table if not exists t (a int default f())",
                &["t"],
                &["f"],
            ),
            (
                "select pg_catalog.pg_sleep(1) from x where y in (select z from w)",
                &["w", "x"],
                &["pg_catalog.pg_sleep"],
            ),
            (
                "update t set a = 1 where b in (select c from u) for update",
                &["t", "u"],
                &[],
            ),
            ("security label on table t is 'x'", &["t"], &[]),
            ("create user u with password 'p' in role admin", &[], &[]),
            ("do $$ select pg_sleep(1) from t $$", &[], &[]),
        ];
        for (sql, tables, functions) in cases {
            let toks: Vec<_> = Lexer::new(sql, PG)
                .filter(|t| t.kind.is_significant())
                .collect();
            let (
                Objects {
                    tables: mut t,
                    functions: mut f,
                },
                _,
            ) = keyword_scan(&toks);
            sort_dedup(&mut t);
            sort_dedup(&mut f);
            assert_eq!(
                (t, f),
                (
                    tables.iter().map(|s| s.to_string()).collect(),
                    functions.iter().map(|s| s.to_string()).collect()
                ),
                "{sql}"
            );
        }
    }

    #[test]
    fn empty_input_is_one_empty_statement() {
        for sql in [
            "",
            "   ",
            ";",
            " ; ;\n",
            "-- just a comment",
            "/* c */ ; -- d",
        ] {
            let facts = analyze(sql, PG);
            assert_eq!(facts.len(), 1, "{sql:?}");
            assert_eq!(facts[0].operation, Empty, "{sql:?}");
            assert_eq!(facts[0].normalized, "", "{sql:?}");
            assert_eq!(
                facts[0].fingerprint,
                Fingerprint::of_normalized(""),
                "{sql:?}"
            );
        }
    }

    #[test]
    fn multi_statement_keeps_order_and_isolates_parse_failures() {
        let facts = analyze(
            "select * from a; cluster b; do $$ begin end $$; delete from c where x = 1;",
            PG,
        );
        let got: Vec<_> = facts
            .iter()
            .map(|f| (f.operation, f.tables.clone(), f.parse_error.is_some()))
            .collect();
        let want = vec![
            (Select, vec!["a".to_string()], false),
            (Utility, vec!["b".to_string()], true),
            (Do, vec![], true),
            (Delete, vec!["c".to_string()], false),
        ];
        assert_eq!(got, want);
        assert_eq!(facts[3].normalized, "delete from c where x = ?");
        // Each statement is fingerprinted on its own.
        assert_eq!(facts[0].fingerprint, fingerprint("select * from a", PG).0);
    }

    #[test]
    fn facts_are_a_function_of_the_fingerprint() {
        let huge = format!(
            "select * from t where a = '{}'",
            "x".repeat(MAX_ANALYZED_LEN + 10)
        );
        let groups: &[&[&str]] = &[
            &[
                "select * from t where a = 1",
                "select * from t where a = 'x'",
                &huge,
            ],
            // A comment followed by a line break leaves no trace (one
            // running to the end of input would: COMMENT_TRUNCATION).
            &["vacuum t", "VACUUM   t -- c\n", "vacuum /* c */ t"],
            &["vacuum t -- c", "vacuum t /* unterminated"],
            &[
                "select * from t where a in (1, 2)",
                "select * from t where a in ($1)",
            ],
            &[
                "insert into t values (1, 'a'), (2, 'b')",
                "insert into t values (3, 'c')",
            ],
            &["copy t from '/a'", "copy t from '/b'"],
            &["select 1 limit 'x' y", "select 1 limit 2 y"],
            &["fetch 5 from c", "fetch 'x' from c"],
            &[
                "create table t (a varchar(10))",
                "create table t (a varchar('x'))",
            ],
            &[
                "set standard_conforming_strings = 'x'",
                "set standard_conforming_strings = 1",
            ],
            // A boolean option given as a literal is read as true: the
            // fingerprint cannot tell `analyze 0` from `analyze 1`.
            &[
                "explain (analyze 0) delete from t",
                "explain (analyze 1) delete from t",
            ],
            &[
                "explain (analyze 'off') delete from t",
                "explain (analyze 1) delete from t",
            ],
        ];
        for group in groups {
            let first = analyze(group[0], PG);
            for sql in &group[1..] {
                assert_eq!(analyze(sql, PG), first, "{:.60} vs {:.60}", sql, group[0]);
            }
        }
    }

    #[test]
    fn parse_errors_carry_no_literal_or_position() {
        let cases = [
            "select * from t where a = 'topsecret' 'more' x",
            "select * from t limit 'topsecret' 'x' y",
            "insert into t values ('topsecret') ('x')",
            "prepare transaction 'topsecret'",
            "select 4111111111111111 4222",
            "select $$topsecret$$ $$x$$ y",
            "select E'topsecret' E'x' 1",
            "select 'topsecret",
        ];
        let mut with_error = 0;
        for sql in cases {
            for f in analyze(sql, PG) {
                if let Some(e) = &f.parse_error {
                    with_error += 1;
                    assert!(
                        !e.contains("topsecret") && !e.contains("4111"),
                        "{sql}: {e}"
                    );
                    assert!(!e.contains("Line:") && !e.contains("Column"), "{sql}: {e}");
                }
            }
        }
        assert!(
            with_error >= 4,
            "only {with_error} cases reached the parser's error path"
        );
        let long = sanitize_error(&"x".repeat(1000));
        assert!(long.len() <= MAX_PARSE_ERROR_LEN);
        let multibyte = sanitize_error(&"é".repeat(1000));
        assert!(multibyte.len() <= MAX_PARSE_ERROR_LEN && multibyte.starts_with('é'));
    }

    #[test]
    fn over_long_statements_are_fingerprinted_not_parsed() {
        let columns = "col_a, ".repeat(MAX_ANALYZED_LEN / 6);
        let sql = format!("select {columns} pg_sleep(1) from big_t where x = 1");
        let facts = analyze(&sql, PG);
        assert_eq!(facts.len(), 1);
        let f = &facts[0];
        assert_eq!(f.operation, Select);
        assert_eq!(f.tables, vec!["big_t".to_string()]);
        assert_eq!(f.functions, vec!["pg_sleep".to_string()]);
        let err = f.parse_error.as_deref().unwrap_or("");
        assert!(err.contains("skeleton"), "{err}");
        assert_eq!(f.fingerprint, fingerprint(&sql, PG).0);
    }

    #[test]
    fn deep_nesting_is_refused_not_fatal() {
        let n = 5_000;
        let parens = format!("select {}1{} from t", "(".repeat(n), ")".repeat(n));
        let f = &analyze(&parens, PG)[0];
        assert_eq!(f.operation, Select);
        assert!(f.parse_error.is_some());

        let explains = format!("{}delete from t", "explain analyze ".repeat(n));
        let f = &analyze(&explains, PG)[0];
        assert_eq!(
            f.operation, Explain,
            "the classifier gives up past MAX_CLASSIFY_DEPTH"
        );

        let ctes = format!("{}select 1{}", "with a as (".repeat(n), ")".repeat(n));
        assert_eq!(analyze(&ctes, PG)[0].operation, Unknown);

        let subqueries = format!("{}select 1{}", "select * from (".repeat(n), ") s".repeat(n));
        assert_eq!(analyze(&subqueries, PG)[0].operation, Select);
    }

    /// Hostile nesting on a thread with a 256 KiB stack, both dialects:
    /// 100 000 `(`, 20 000 nested subqueries, and 60 000-term operator
    /// chains (left-deep trees that sqlparser's recursion limit does not
    /// bound, walked by our own AST visitors and dropped). Each must end in
    /// facts (a parse error where the parser refuses), never a stack
    /// overflow: the parse and the walk run on a stack sized for them.
    #[test]
    fn hostile_nesting_on_a_small_stack_is_a_clean_error() {
        let n = 100_000;
        let cases = [
            (format!("select {}1{}", "(".repeat(n), ")".repeat(n)), true),
            (
                format!(
                    "{}select 1{}",
                    "select * from (".repeat(20_000),
                    ") s".repeat(20_000)
                ),
                true,
            ),
            (format!("select 1{} from t", "+1".repeat(60_000)), false),
            (
                format!("select * from t where a{}", " and a".repeat(40_000)),
                false,
            ),
        ];
        for dialect in [PG, MY] {
            for (sql, refused) in &cases {
                let sql = sql.clone();
                let facts = std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || analyze(&sql, dialect))
                    .unwrap()
                    .join()
                    .expect("analyze survives a 256 KiB stack");
                assert_eq!(facts.len(), 1);
                assert_eq!(facts[0].operation, Select);
                if *refused {
                    assert!(
                        facts[0].parse_error.is_some(),
                        "deep nesting is a parse error"
                    );
                }
            }
        }
    }

    #[test]
    fn mysql_statements() {
        let cases: &[(&str, Operation, &[&str])] = &[
            (
                "SELECT * FROM `Shop`.`Orders` WHERE id = ?",
                Select,
                &["Shop.Orders"],
            ),
            (
                "select * from orders o join customers c on c.id = o.cid # tail",
                Select,
                &["customers", "orders"],
            ),
            (
                "insert into t (a) values (?) on duplicate key update a = values(a)",
                Insert,
                &["t"],
            ),
            ("delete from t where a = 'x\\'' or 1=1 -- '", Delete, &["t"]),
            ("replace into t values (1)", Insert, &["t"]),
            ("select * from t into outfile '/tmp/x'", CopyOut, &["t"]),
            ("lock tables t read", Utility, &["t"]),
            ("show tables", Show, &[]),
            ("use shop", Set, &[]),
        ];
        for (sql, op, tables) in cases {
            let facts = analyze(sql, MY);
            assert_eq!(facts.len(), 1, "{sql}");
            assert_eq!(
                (facts[0].operation, &facts[0].tables),
                (*op, &tables.iter().map(|t| t.to_string()).collect()),
                "{sql}: {:?}",
                facts[0].parse_error
            );
        }
    }

    #[test]
    fn name_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("accounts", "accounts", true),
            ("accounts", "public.accounts", true),
            ("public.accounts", "accounts", true),
            ("public.accounts", "public.accounts", true),
            ("public.accounts", "other.accounts", false),
            ("db.public.accounts", "public.accounts", true),
            ("db.public.accounts", "x.public.accounts", false),
            ("accounts", "accounts_old", false),
            ("Accounts", "accounts", false),
            ("pg_sleep", "pg_catalog.pg_sleep", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(name_matches(pattern, name), *want, "{pattern} ~ {name}");
        }
        let f = &analyze("select pg_catalog.pg_sleep(1) from public.accounts", PG)[0];
        assert!(f.touches_table("accounts") && f.touches_table("public.accounts"));
        assert!(!f.touches_table("hr.accounts") && !f.touches_table("orders"));
        assert!(f.calls_function("pg_sleep") && !f.calls_function("pg_read_file"));
    }

    #[test]
    fn operation_list_is_complete_and_ordered() {
        let mut names = std::collections::HashSet::new();
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?} out of order");
            let name = op.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert!(names.insert(name), "duplicate {name}");
            assert_eq!(op.to_string(), name);
            let json = serde_json::to_string(op).expect("serialise");
            assert_eq!(json, format!("\"{name}\""));
            let back: Operation = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, *op);
        }
        assert_eq!(Operation::CopyIn.as_str(), "copy_in");
    }

    #[test]
    fn wide_statements_stay_linear() {
        // Quadratic lookups would make each of these take minutes. The AST
        // walk is driven directly: these statements exceed MAX_ANALYZED_LEN.
        let n = 12_000;
        let ctes: Vec<String> = (0..n).map(|i| format!("c{i} as (select 1)")).collect();
        let refs: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let sql = format!(
            "with {} select * from {}, real_t",
            ctes.join(", "),
            refs.join(", ")
        );
        let ast = parse(&sql, Dialect::Postgres).expect("parses");
        assert_eq!(
            collect(&ast, Dialect::Postgres).0.tables,
            vec!["real_t".to_string()]
        );

        let calls: Vec<String> = (0..n)
            .map(|i| format!("generate_series(1, 1) g{i}"))
            .collect();
        let ast = parse(
            &format!("select * from {}", calls.join(", ")),
            Dialect::Postgres,
        )
        .expect("parses");
        let (objects, _) = collect(&ast, Dialect::Postgres);
        assert_eq!((objects.tables.len(), objects.functions.len()), (0, n));

        // The keyword fallback (VACUUM with column lists does not parse).
        let lists: Vec<String> = (0..n).map(|i| format!("t{i} (a)")).collect();
        let f = &analyze(&format!("vacuum analyze {}", lists.join(", ")), PG)[0];
        assert!(f.parse_error.is_some());
        assert_eq!((f.tables.len(), f.functions.len()), (n, 0));

        let froms = "from a, ".repeat(n);
        let f = &analyze(&format!("select * {froms} b where ("), PG)[0];
        assert!(f.parse_error.is_some());
        assert_eq!(f.tables, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn literal_values_never_change_facts() {
        // Swap every literal for one of another kind; where the fingerprint
        // stays the same, the facts must too (the proxy caches them by it).
        let mut compared = 0;
        for (sql, _, _) in STATEMENTS {
            let variant: String = Lexer::new(sql, PG)
                .map(|t| match t.kind {
                    TokenKind::String => "42",
                    TokenKind::Number => "'x''y'",
                    TokenKind::Param => "E'\\n'",
                    _ => t.text,
                })
                .collect();
            if variant == *sql || fingerprint(&variant, PG) != fingerprint(sql, PG) {
                continue;
            }
            assert_eq!(
                analyze(&variant, PG),
                analyze(sql, PG),
                "{sql} vs {variant}"
            );
            compared += 1;
        }
        assert!(
            compared >= 50,
            "only {compared} statements had literals to swap"
        );
    }
}
