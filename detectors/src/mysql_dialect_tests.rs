//! The MySQL / MariaDB dialect end to end: lexing under the session's SQL
//! modes, executable comments, statement splitting (compound statements),
//! and the facts and signals of the statements real clients, sysbench and
//! injection attempts send. Table-driven; each table states what the
//! server does and what the facts must say about it.

use crate::facts::{analyze, Operation, StatementFacts};
use crate::fingerprint::{normalize, TRUNCATION_MARKER};
use crate::lexer::test_options::{MY, MY_ANSI, MY_NBE};
use crate::lexer::{LexOptions, Lexer, TokenKind};
use crate::signals::Signals;
use crate::split::split_statements;

use Operation::*;

fn one(sql: &str, opts: LexOptions) -> StatementFacts {
    let mut facts = analyze(sql, opts);
    assert_eq!(facts.len(), 1, "{sql:?} is one statement: {facts:#?}");
    facts.remove(0)
}

fn kinds(sql: &str, opts: LexOptions) -> Vec<(TokenKind, &str)> {
    Lexer::new(sql, opts)
        .filter(|t| t.kind.is_significant())
        .map(|t| (t.kind, t.text))
        .collect()
}

// ---------------------------------------------------------------------------
// Lexing
// ---------------------------------------------------------------------------

#[test]
fn lexing_under_sql_modes() {
    use TokenKind::*;
    type Case = (
        &'static str,
        LexOptions,
        &'static [(TokenKind, &'static str)],
    );
    let cases: &[Case] = &[
        // Backslash escapes (the default) against NO_BACKSLASH_ESCAPES.
        // (`b'` opens a bit-string literal, as in the server.)
        (r"'a\' , 'b'", MY, &[(String, r"'a\' , '"), (String, "b'")]),
        (
            r"'a\' , 'b'",
            MY_NBE,
            &[(String, r"'a\'"), (Comma, ","), (String, "'b'")],
        ),
        (r#""a\"b""#, MY, &[(String, r#""a\"b""#)]),
        (
            r#""a\" b""#,
            MY_NBE,
            &[(String, r#""a\""#), (Word, "b"), (String, "\"")],
        ),
        (r"N'\'' x", MY, &[(String, r"N'\''"), (Word, "x")]),
        (r"N'\' x", MY_NBE, &[(String, r"N'\'"), (Word, "x")]),
        (
            r"_utf8mb4'\'' x",
            MY,
            &[(Word, "_utf8mb4"), (String, r"'\''"), (Word, "x")],
        ),
        ("'it''s'", MY_NBE, &[(String, "'it''s'")]),
        // ANSI_QUOTES: "…" is an identifier (doubled quote, no escapes).
        (
            r#""a""b" "c\""#,
            MY_ANSI,
            &[(QuotedIdent, r#""a""b""#), (QuotedIdent, r#""c\""#)],
        ),
        ("\"t\"", MY, &[(String, "\"t\"")]),
        // Backticks never escape; a doubled backtick is one.
        ("`a``b\\` x", MY, &[(QuotedIdent, "`a``b\\`"), (Word, "x")]),
        // `--` needs whitespace or a control character after it.
        (
            "1--1",
            MY,
            &[
                (Number, "1"),
                (Operator, "-"),
                (Operator, "-"),
                (Number, "1"),
            ],
        ),
        ("1--\tx\n2", MY, &[(Number, "1"), (Number, "2")]),
        ("1--\u{1}x\n2", MY, &[(Number, "1"), (Number, "2")]),
        ("1--", MY, &[(Number, "1")]),
        // A line comment ends at \n only: a \r does not end it.
        ("1 # a\r2\n3", MY, &[(Number, "1"), (Number, "3")]),
        ("1 -- a\r2\n3", MY, &[(Number, "1"), (Number, "3")]),
        // Variables are one word; `'u'@'h'` keeps `@` an operator.
        (
            "@@session.sql_mode, @@version_comment, @a:=1",
            MY,
            &[
                (Word, "@@session"),
                (Dot, "."),
                (Word, "sql_mode"),
                (Comma, ","),
                (Word, "@@version_comment"),
                (Comma, ","),
                (Word, "@a"),
                (Operator, ":="),
                (Number, "1"),
            ],
        ),
        (
            "'u'@'%' bob@localhost",
            MY,
            &[
                (String, "'u'"),
                (Operator, "@"),
                (String, "'%'"),
                (Word, "bob"),
                (Word, "@localhost"),
            ],
        ),
        // Executable comments: the markers are whitespace, the content code.
        ("/*! select */ 1", MY, &[(Word, "select"), (Number, "1")]),
        (
            "/*!50000 select */ 1",
            MY,
            &[(Word, "select"), (Number, "1")],
        ),
        (
            "/*!100100 select */ 1",
            MY,
            &[(Word, "select"), (Number, "1")],
        ),
        // Fewer than five digits are no version: code.
        ("/*!1 union */", MY, &[(Number, "1"), (Word, "union")]),
        ("/*M! select */ 1", MY, &[(Word, "select"), (Number, "1")]),
        (
            "/*M!100100 select */ 1",
            MY,
            &[(Word, "select"), (Number, "1")],
        ),
        // Outside an executable comment `*/` is two operators.
        (
            "1 */ 2",
            MY,
            &[
                (Number, "1"),
                (Operator, "*"),
                (Operator, "/"),
                (Number, "2"),
            ],
        ),
        // Optimizer hints are comments.
        (
            "select /*+ BKA(t) */ 1",
            MY,
            &[(Word, "select"), (Number, "1")],
        ),
    ];
    for (sql, opts, want) in cases {
        assert_eq!(&kinds(sql, *opts), want, "lexing {sql:?} with {opts:?}");
    }
}

#[test]
fn version_dependent_comments_are_not_read_either_way() {
    use TokenKind::*;
    // Each reads differently on a server older than the version (comment
    // up to the first `*/`) and a newer one (code, where the quote or
    // comment runs past that `*/`). The lexer cuts the opener to an
    // Ambiguous token and lexes what it would have hidden as code.
    let cases: &[(&str, &[(TokenKind, &str)])] = &[
        (
            "select 1 /*!99999 ' */ union select 2 -- '",
            &[
                (Word, "select"),
                (Number, "1"),
                (Ambiguous, "'"),
                (Word, "union"),
                (Word, "select"),
                (Number, "2"),
                (Ambiguous, "--"),
                (Ambiguous, "'"),
            ],
        ),
        (
            "select 1 /*!99999 # */ union select 2\n",
            &[
                (Word, "select"),
                (Number, "1"),
                (Ambiguous, "#"),
                (Word, "union"),
                (Word, "select"),
                (Number, "2"),
            ],
        ),
        (
            "select 1 /*M! -- */ union select 2\n",
            &[
                (Word, "select"),
                (Number, "1"),
                (Ambiguous, "--"),
                (Word, "union"),
                (Word, "select"),
                (Number, "2"),
            ],
        ),
        // After a cut, every quote and comment opener is cut too.
        (
            "select /*!99999 `*/` 1 'a' # b",
            &[
                (Word, "select"),
                (Ambiguous, "`"),
                (Ambiguous, "`"),
                (Number, "1"),
                (Ambiguous, "'"),
                (Word, "a"),
                (Ambiguous, "'"),
                (Ambiguous, "#"),
                (Word, "b"),
            ],
        ),
        // The newer server closes the string at the second quote and runs
        // what follows; the older one opens a string there.
        (
            "select 1 /*!80100 ' */ ' union select 2 -- '",
            &[
                (Word, "select"),
                (Number, "1"),
                (Ambiguous, "'"),
                (Ambiguous, "'"),
                (Word, "union"),
                (Word, "select"),
                (Number, "2"),
                (Ambiguous, "--"),
                (Ambiguous, "'"),
            ],
        ),
        // A nested comment moves the old server's end to the second `*/`;
        // the newer server closes at the first and then opens a string.
        (
            "select 1 /*!99999 '/*' */ ' */ union select 2 -- '",
            &[
                (Word, "select"),
                (Number, "1"),
                (String, "'/*'"),
                (Ambiguous, "'"),
                (Operator, "*"),
                (Operator, "/"),
                (Word, "union"),
                (Word, "select"),
                (Number, "2"),
                (Ambiguous, "--"),
                (Ambiguous, "'"),
            ],
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(&kinds(sql, MY), want, "lexing {sql:?}");
    }
    // An unversioned `/*!` is code on every server: no ambiguity, the
    // string is a string.
    assert_eq!(
        kinds("select 1 /*! ' */ ' */", MY),
        [(Word, "select"), (Number, "1"), (String, "' */ '")]
    );
    // Past the last `*/` a comment reading can end at, lexing is normal.
    assert_eq!(
        kinds("select /*!99999 1 */ '*/'", MY),
        [(Word, "select"), (Number, "1"), (String, "'*/'")]
    );
}

#[test]
fn executable_comment_scans_stay_linear() {
    // Every opener scans ahead for where a comment reading would end; with
    // no `*/` anywhere that must not cost the square of the input.
    let sql = "/*!50000 ".repeat(200_000);
    let started = std::time::Instant::now();
    let count = Lexer::new(&sql, MY).count();
    assert_eq!(count, 400_000);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    let sql = format!("{}' */ x", "/*M! ".repeat(100_000));
    assert!(Lexer::new(&sql, MY).any(|t| t.kind == TokenKind::Ambiguous));
    // After a cut, openers are cut without scanning what they would open.
    let sql = format!("select 1 /*!99999 ' */ {}", "#'`".repeat(300_000));
    let started = std::time::Instant::now();
    let count = Lexer::new(&sql, MY)
        .filter(|t| t.kind == TokenKind::Ambiguous)
        .count();
    assert_eq!(count, 900_001);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// Splitting
// ---------------------------------------------------------------------------

#[test]
fn backslash_mode_decides_where_statements_end() {
    let cases: &[(&str, LexOptions, &[&str])] = &[
        // The classic: with backslash escapes the quote is escaped and the
        // rest is one literal; without, `'\'` is whole and DROP runs.
        (
            r"select '\'; drop table t; -- '",
            MY,
            &[r"select '\'; drop table t; -- '"],
        ),
        (
            r"select '\'; drop table t; -- '",
            MY_NBE,
            &[r"select '\'", "drop table t"],
        ),
        (
            r"select '\\'; drop table t; -- '",
            MY,
            &[r"select '\\'", "drop table t"],
        ),
        (
            r"select '\\'; drop table t; -- '",
            MY_NBE,
            &[r"select '\\'", "drop table t"],
        ),
        (
            r#"select "\"; drop table t; -- ""#,
            MY,
            &[r#"select "\"; drop table t; -- ""#],
        ),
        (
            r#"select "\"; drop table t; -- ""#,
            MY_NBE,
            &[r#"select "\""#, "drop table t"],
        ),
        // ANSI_QUOTES: `"…"` is an identifier, where `\` never escapes.
        (
            r#"select "\"; drop table t"#,
            MY_ANSI,
            &[r#"select "\""#, "drop table t"],
        ),
    ];
    for (sql, opts, want) in cases {
        assert_eq!(
            &split_statements(sql, *opts),
            want,
            "splitting {sql:?} with {opts:?}"
        );
    }
    // And the facts follow the mode.
    let two = analyze(r"select '\'; drop table t; -- '", MY_NBE);
    assert_eq!(
        two.iter().map(|f| f.operation).collect::<Vec<_>>(),
        [Select, Ddl]
    );
    let one_literal = one(r"select '\'; drop table t; -- '", MY);
    assert_eq!(
        (one_literal.operation, one_literal.normalized.as_str()),
        (Select, "select ?")
    );
    assert_eq!(normalize(r"select 'a\' , 'b'", MY_NBE), "select ?, ?");
    assert_eq!(normalize(r"select 'a\' , 'b'", MY), "select ?");
}

#[test]
fn compound_statements_are_one_statement() {
    let cases: &[(&str, &[&str])] = &[
        (
            "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END",
            &["CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END"],
        ),
        (
            "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END; SELECT 3",
            &["CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END", "SELECT 3"],
        ),
        (
            "create definer=`root`@`localhost` procedure p(in a int) begin \
             declare x int default 0; \
             if a > 0 then set x = 1; elseif a < 0 then set x = -1; else begin set x = 0; end; end if; \
             lbl: loop set x = x + 1; if x > 10 then leave lbl; end if; end loop lbl; \
             while x > 0 do set x = x - 1; end while; \
             repeat set x = x + 1; until x > 3 end repeat; \
             case x when 1 then select 1; else select case when x > 1 then if(x, 1, 2) else repeat('a', 2) end; end case; \
             select if(x > 0, 'a', 'b'), repeat('b', 2); \
             drop table if exists tmp; \
             end; select 9",
            &[
                "create definer=`root`@`localhost` procedure p(in a int) begin \
                 declare x int default 0; \
                 if a > 0 then set x = 1; elseif a < 0 then set x = -1; else begin set x = 0; end; end if; \
                 lbl: loop set x = x + 1; if x > 10 then leave lbl; end if; end loop lbl; \
                 while x > 0 do set x = x - 1; end while; \
                 repeat set x = x + 1; until x > 3 end repeat; \
                 case x when 1 then select 1; else select case when x > 1 then if(x, 1, 2) else repeat('a', 2) end; end case; \
                 select if(x > 0, 'a', 'b'), repeat('b', 2); \
                 drop table if exists tmp; \
                 end",
                "select 9",
            ],
        ),
        (
            "CREATE DEFINER=CURRENT_USER() PROCEDURE p() BEGIN SELECT 1; END; SELECT 2",
            &["CREATE DEFINER=CURRENT_USER() PROCEDURE p() BEGIN SELECT 1; END", "SELECT 2"],
        ),
        (
            "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; SET NEW.b = 2; END",
            &["CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; SET NEW.b = 2; END"],
        ),
        (
            "create trigger trg before insert on t for each row if new.a > 0 then set new.a = 0; end if; select 1",
            &[
                "create trigger trg before insert on t for each row if new.a > 0 then set new.a = 0; end if",
                "select 1",
            ],
        ),
        (
            "create function f(a int) returns int deterministic begin return a + 1; end; select f(1)",
            &["create function f(a int) returns int deterministic begin return a + 1; end", "select f(1)"],
        ),
        (
            "create procedure p() if @a then select 1; end if; select 2",
            &["create procedure p() if @a then select 1; end if", "select 2"],
        ),
        (
            "create event e on schedule every 1 day do begin delete from t where a < 1; insert into u values (1); end; select 1",
            &[
                "create event e on schedule every 1 day do begin delete from t where a < 1; insert into u values (1); end",
                "select 1",
            ],
        ),
        // MariaDB's compound statements outside stored programs.
        (
            "BEGIN NOT ATOMIC SELECT 1; SELECT 2; END; SELECT 3",
            &["BEGIN NOT ATOMIC SELECT 1; SELECT 2; END", "SELECT 3"],
        ),
        (
            "IF @a THEN SELECT 1; ELSE SELECT 2; END IF; SELECT 3",
            &["IF @a THEN SELECT 1; ELSE SELECT 2; END IF", "SELECT 3"],
        ),
        (
            "lbl: LOOP SELECT 1; LEAVE lbl; END LOOP; SELECT 2",
            &["lbl: LOOP SELECT 1; LEAVE lbl; END LOOP", "SELECT 2"],
        ),
        // Not compound statements.
        ("begin; select 1; commit", &["begin", "select 1", "commit"]),
        ("begin work; select 1; end", &["begin work", "select 1", "end"]),
        ("create table event (begin int); select 1", &["create table event (begin int)", "select 1"]),
        ("select if(a, 1, 2) from t; select 2", &["select if(a, 1, 2) from t", "select 2"]),
        ("select case when a then 1 end; select 2", &["select case when a then 1 end", "select 2"]),
        (
            "drop procedure if exists p; create procedure p() begin end; call p()",
            &["drop procedure if exists p", "create procedure p() begin end", "call p()"],
        ),
        // A body never closed runs to the end, as the server reads it.
        (
            "create procedure p() begin select 1; drop table t",
            &["create procedure p() begin select 1; drop table t"],
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(&split_statements(sql, MY), want, "splitting {sql:?}");
    }
}

#[test]
fn semicolons_in_executable_comments() {
    let cases: &[(&str, &[&str])] = &[
        // Version-dependent: a `;` there is code to one server and comment
        // text to another, so the text is judged as one statement.
        (
            "select 1 /*!99999 ; drop table t */",
            &["select 1 /*!99999 ; drop table t */"],
        ),
        // The older server runs the DROP as a second statement; the newer
        // one reads it inside a string. One statement, lexed flat, shows it.
        (
            "select 1 /*!99999 ; ' */ ; drop table x; -- '",
            &["select 1 /*!99999 ; ' */ ; drop table x; -- '"],
        ),
        // After a cut nothing splits: the newer server's string runs past
        // the `;` and closes before the UNION, which it runs.
        (
            "select 1 /*!99999 ' */ ; select ' union select 2 -- '",
            &["select 1 /*!99999 ' */ ; select ' union select 2 -- '"],
        ),
        (
            "select 1 /*M! ; drop table t */; select 2",
            &["select 1 /*M! ; drop table t */", "select 2"],
        ),
        // Unversioned: code everywhere, and the server lexes the next
        // statement afresh (so its `*/` is `*` `/`).
        (
            "select 1 /*! ; select 2 */",
            &["select 1 /*!", "select 2 */"],
        ),
        // mysqldump's form.
        (
            "/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET FOREIGN_KEY_CHECKS=0 */;",
            &[
                "/*!40101 SET NAMES utf8mb4 */",
                "/*!40014 SET FOREIGN_KEY_CHECKS=0 */",
            ],
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(&split_statements(sql, MY), want, "splitting {sql:?}");
    }
}

// ---------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------

/// Statements real clients (the mysql CLI, Connector/J, PyMySQL, Go's
/// driver) and sysbench send, with their operation and whether sqlparser
/// parses them (the default policy refuses unparsed statements to
/// non-administrators).
const CLIENT_STATEMENTS: &[(&str, Operation, bool)] = &[
    ("SET NAMES utf8mb4", Set, true),
    ("SET NAMES 'gbk' COLLATE 'gbk_chinese_ci'", Set, true),
    ("SET character_set_client = gbk", Set, true),
    ("SET autocommit=1", Set, true),
    ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", Transaction, true),
    ("SET sql_mode='NO_BACKSLASH_ESCAPES'", Set, true),
    ("SET @@session.sql_mode = 'ANSI_QUOTES'", Set, true),
    ("SET @a = 1, @@session.autocommit = 0", Set, true),
    ("SELECT @@version_comment LIMIT 1", Select, true),
    ("SELECT DATABASE()", Select, true),
    ("SELECT @@max_allowed_packet, @@tx_isolation", Select, true),
    ("SHOW VARIABLES LIKE 'sql_mode'", Show, true),
    ("SHOW WARNINGS", Show, true),
    ("SHOW FULL COLUMNS FROM t", Show, true),
    ("SHOW CREATE TABLE t", Show, true),
    ("SHOW TABLES", Show, true),
    ("SHOW GRANTS", Show, true),
    ("SHOW DATABASES", Show, true),
    ("USE test", Set, true),
    ("START TRANSACTION READ ONLY", Transaction, true),
    ("BEGIN", Transaction, true),
    ("COMMIT", Transaction, true),
    ("ROLLBACK", Transaction, true),
    // sysbench oltp_*
    ("SELECT c FROM sbtest1 WHERE id=5", Select, true),
    ("SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 100", Select, true),
    ("SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 100 ORDER BY c", Select, true),
    ("SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 1 AND 100", Select, true),
    ("UPDATE sbtest1 SET k=k+1 WHERE id=5", Update, true),
    ("UPDATE sbtest1 SET c='x' WHERE id=5", Update, true),
    ("DELETE FROM sbtest1 WHERE id=5", Delete, true),
    ("INSERT INTO sbtest1 (id, k, c, pad) VALUES (5, 1, 'x', 'y')", Insert, true),
    (
        "CREATE TABLE sbtest1(id INTEGER NOT NULL AUTO_INCREMENT, k INTEGER DEFAULT '0' NOT NULL, \
         c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL, PRIMARY KEY (id)) ENGINE = innodb",
        Ddl,
        true,
    ),
    ("CREATE INDEX k_1 ON sbtest1(k)", Ddl, true),
    ("DROP TABLE IF EXISTS sbtest1", Ddl, true),
    // DML forms
    ("INSERT INTO t (a, b) VALUES (1, 2) ON DUPLICATE KEY UPDATE b = VALUES(b)", Insert, true),
    ("INSERT INTO t (a, b) VALUES (1, 2) AS new ON DUPLICATE KEY UPDATE b = new.b", Insert, true),
    ("REPLACE INTO t (a) VALUES (1)", Insert, true),
    ("INSERT INTO t SET a=1", Insert, true),
    ("SELECT a FROM t WHERE id = 1 FOR UPDATE", Select, true),
    ("SELECT a FROM t WHERE id = 1 LOCK IN SHARE MODE", Select, true),
    ("SELECT * FROM t LIMIT 10, 5", Select, true),
    ("SELECT 'a' 'b'", Select, true),
    ("SELECT X'4142', 0x4142, b'01'", Select, true),
    ("SELECT _utf8mb4'x' COLLATE utf8mb4_bin", Select, true),
    ("SELECT N'x'", Select, true),
    ("SELECT * FROM t1 STRAIGHT_JOIN t2", Select, true),
    ("SELECT JSON_EXTRACT(j, '$.a') FROM t", Select, true),
    ("SELECT j->>'$.a', j->'$.b' FROM t", Select, true),
    ("/* comment */ SELECT 1", Select, true),
    ("SELECT 1 # trailing comment\n", Select, true),
    ("SELECT `a` FROM `db`.`t` WHERE `b` = ?", Select, true),
    // Routines, prepared statements, administration
    ("CALL p(1)", Call, true),
    ("EXECUTE s USING @a", Execute, true),
    ("DEALLOCATE PREPARE s", Deallocate, true),
    ("LOCK TABLES t READ", Utility, true),
    ("UNLOCK TABLES", Utility, true),
    ("FLUSH PRIVILEGES", Utility, true),
    ("KILL 5", Utility, true),
    ("KILL QUERY 5", Utility, true),
    ("EXPLAIN SELECT a FROM t WHERE id = 1", Explain, true),
    ("DESCRIBE t", Show, true),
    ("DESC t", Show, true),
    // sqlparser does not parse these: the keyword fallback gives facts,
    // with a parse_error.
    ("CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END", Ddl, false),
    // The statement text is a string literal the firewall cannot see: it
    // must stay unparsed (refused to non-administrators), or PREPARE +
    // EXECUTE would run any SQL past the policy.
    ("PREPARE s FROM 'select ?'", Prepare, false),
    ("SELECT a FROM t INTO OUTFILE '/tmp/x'", CopyOut, false),
    ("LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t", CopyIn, false),
];

#[test]
fn client_statements() {
    let mut failures = Vec::new();
    for (sql, op, parses) in CLIENT_STATEMENTS {
        let facts = analyze(sql, MY);
        let got: Vec<_> = facts
            .iter()
            .map(|f| (f.operation, f.parse_error.is_none()))
            .collect();
        if got != [(*op, *parses)] {
            failures.push(format!(
                "{sql}\n    want {:?}\n    got  {got:?}\n    parse_error {:?}",
                (op, parses),
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

/// (statement, options, operation, tables, signals that must be set,
/// whether it parses).
type FactCase = (
    &'static str,
    LexOptions,
    Operation,
    &'static [&'static str],
    Signals,
    bool,
);

const UNION: Signals = Signals::UNION_SELECT;
const SECRET: Signals = Signals::CATALOG_SECRET;
const PROBE: Signals = Signals::CATALOG_PROBE;
const FILE: Signals = Signals::FILE_ACCESS;
const DELAY: Signals = Signals::TIME_DELAY;
const NONE: Signals = Signals::empty();

const FACTS: &[FactCase] = &[
    // Executable comments: facts see into them.
    (
        "select id from t where id = 1 /*!50000 union select user, password from mysql.user */",
        MY,
        Select,
        &["mysql.user", "t"],
        UNION.union(SECRET),
        true,
    ),
    (
        "select id from t where id = 1 /*!union*/ /*!select*/ user, password /*!from*/ mysql.user",
        MY,
        Select,
        &["mysql.user", "t"],
        UNION.union(SECRET),
        true,
    ),
    ("select /*!sleep(5)*/ 1", MY, Select, &[], DELAY, false),
    ("select 1 /*!, sleep(5)*/", MY, Select, &[], DELAY, true),
    (
        "select 1 /*M!100100 , benchmark(1000000, md5(1)) */",
        MY,
        Select,
        &[],
        DELAY,
        true,
    ),
    (
        "select * from t where id = 1 /*!50000 or 1=1 */",
        MY,
        Select,
        &["t"],
        Signals::TAUTOLOGY,
        true,
    ),
    (
        "select * from t /*!50000 into outfile '/tmp/x' */",
        MY,
        CopyOut,
        &["t"],
        FILE,
        false,
    ),
    ("/*!40101 SET NAMES utf8mb4 */", MY, Set, &[], NONE, true),
    (
        "select /*+ MAX_EXECUTION_TIME(1000) */ a from t",
        MY,
        Select,
        &["t"],
        NONE,
        true,
    ),
    // Version-dependent readings: unparsed, everything either reading can
    // run is visible.
    (
        "select 1 /*!99999 ' */ union select password from mysql.user -- '",
        MY,
        Select,
        &["mysql.user"],
        UNION.union(SECRET),
        false,
    ),
    (
        "select 1 /*!99999 # */ union select password from mysql.user\n",
        MY,
        Select,
        &["mysql.user"],
        UNION.union(SECRET),
        false,
    ),
    (
        "select 1 /*M! -- */ union select password from mysql.user\n",
        MY,
        Select,
        &["mysql.user"],
        UNION.union(SECRET),
        false,
    ),
    (
        "select 1 /*!99999 ; ' */ union select password from mysql.user -- '",
        MY,
        Select,
        &["mysql.user"],
        UNION.union(SECRET),
        false,
    ),
    // Server files.
    (
        "select * from t into outfile '/tmp/x'",
        MY,
        CopyOut,
        &["t"],
        FILE,
        false,
    ),
    (
        "select a into outfile '/tmp/x' from t",
        MY,
        CopyOut,
        &["t"],
        FILE,
        false,
    ),
    (
        "select a from t into dumpfile '/tmp/x'",
        MY,
        CopyOut,
        &["t"],
        FILE,
        false,
    ),
    (
        "select a from t into outfile '/tmp/x' fields terminated by ',' lines terminated by '\\n'",
        MY,
        CopyOut,
        &["t"],
        FILE,
        false,
    ),
    (
        "(select a from t) into outfile '/tmp/x'",
        MY,
        CopyOut,
        &["t"],
        FILE,
        false,
    ),
    (
        "table t into outfile '/tmp/x'",
        MY,
        CopyOut,
        &["t"],
        FILE,
        false,
    ),
    (
        "select a from t union select b from u into outfile '/tmp/x'",
        MY,
        CopyOut,
        &["t", "u"],
        FILE,
        false,
    ),
    ("select a into @v from t", MY, Select, &["t"], NONE, true),
    (
        "load data infile '/tmp/x' into table t",
        MY,
        CopyIn,
        &["t"],
        FILE,
        false,
    ),
    (
        "load data local infile '/tmp/x' replace into table s.t",
        MY,
        CopyIn,
        &["s.t"],
        FILE,
        false,
    ),
    (
        "load xml local infile '/tmp/x' into table t rows identified by '<r>'",
        MY,
        CopyIn,
        &["t"],
        FILE,
        false,
    ),
    (
        "select load_file('/etc/passwd')",
        MY,
        Select,
        &[],
        FILE,
        true,
    ),
    (
        "select LOAD_FILE(0x2f6574632f706173737764)",
        MY,
        Select,
        &[],
        FILE,
        true,
    ),
    // Time delays.
    ("select sleep(5)", MY, Select, &[], DELAY, true),
    ("SELECT SLEEP(5)", MY, Select, &[], DELAY, true),
    (
        "select * from t where id = 1 and sleep(5)",
        MY,
        Select,
        &["t"],
        DELAY,
        true,
    ),
    (
        "select benchmark(1000000, md5('a'))",
        MY,
        Select,
        &[],
        DELAY,
        true,
    ),
    ("do sleep(5)", MY, Do, &[], DELAY, false),
    // Catalogs, in any case and quoting.
    (
        "select * from information_schema.tables",
        MY,
        Select,
        &["information_schema.tables"],
        PROBE,
        true,
    ),
    (
        "SELECT * FROM INFORMATION_SCHEMA.TABLES",
        MY,
        Select,
        &["information_schema.tables"],
        PROBE,
        true,
    ),
    (
        "select * from `information_schema`.`tables`",
        MY,
        Select,
        &["information_schema.tables"],
        PROBE,
        true,
    ),
    (
        "select * from `INFORMATION_SCHEMA`.`COLUMNS`",
        MY,
        Select,
        &["INFORMATION_SCHEMA.COLUMNS"],
        PROBE,
        true,
    ),
    (
        "select 1 union select table_name from information_schema.tables",
        MY,
        Select,
        &["information_schema.tables"],
        UNION.union(PROBE),
        true,
    ),
    (
        "select * from mysql.USER",
        MY,
        Select,
        &["mysql.user"],
        SECRET,
        true,
    ),
    (
        "select * from `mysql`.`user`",
        MY,
        Select,
        &["mysql.user"],
        SECRET,
        true,
    ),
    (
        "select * from mysql.global_priv",
        MY,
        Select,
        &["mysql.global_priv"],
        SECRET,
        true,
    ),
    (
        "select * from mysql.slave_master_info",
        MY,
        Select,
        &["mysql.slave_master_info"],
        SECRET,
        true,
    ),
    (
        "select * from mysql.db",
        MY,
        Select,
        &["mysql.db"],
        PROBE,
        true,
    ),
    (
        "select * from performance_schema.threads",
        MY,
        Select,
        &["performance_schema.threads"],
        PROBE,
        true,
    ),
    ("show create table t", MY, Show, &["t"], NONE, true),
    // Inside a stored program body.
    (
        "create procedure p() begin select * from mysql.user; end",
        MY,
        Ddl,
        &["mysql.user"],
        SECRET,
        false,
    ),
    // MariaDB's anonymous block runs anything: the least understood kind.
    (
        "begin not atomic delete from t; select * from mysql.user; end",
        MY,
        Unknown,
        &["mysql.user", "t"],
        SECRET,
        false,
    ),
    ("l: loop select 1; end loop", MY, Unknown, &[], NONE, false),
    // ANSI_QUOTES: "…" names tables.
    (
        "select \"a\" from \"t\"",
        MY_ANSI,
        Select,
        &["t"],
        NONE,
        true,
    ),
    (
        "select * from \"mysql\".\"user\"",
        MY_ANSI,
        Select,
        &["mysql.user"],
        SECRET,
        true,
    ),
];

#[test]
fn facts_table() {
    let mut failures = Vec::new();
    for (sql, opts, op, tables, signals, parses) in FACTS {
        let facts = analyze(sql, *opts);
        let ok = facts.len() == 1 && {
            let f = &facts[0];
            f.operation == *op
                && f.tables == *tables
                && f.signals.contains(*signals)
                && f.parse_error.is_none() == *parses
        };
        if !ok {
            failures.push(format!(
                "{sql}\n    want {op:?} {tables:?} {signals:?} parses={parses}\n    got  {:?}",
                facts
                    .iter()
                    .map(|f| (f.operation, &f.tables, f.signals, &f.parse_error))
                    .collect::<Vec<_>>()
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
fn what_is_not_a_signal() {
    // GET_LOCK waits only when another session holds the lock, and
    // applications use it for advisory locking: no TIME_DELAY.
    assert_eq!(
        one("select get_lock('x', 10)", MY).signals,
        Signals::empty()
    );
    // An application table named like a catalog schema, unqualified.
    assert_eq!(one("select * from user", MY).signals, Signals::empty());
    // `1--1` is arithmetic, not a truncating comment.
    let f = one("select 1--1", MY);
    assert_eq!(
        (f.normalized.as_str(), f.signals),
        ("select ? - ?", Signals::empty())
    );
    // A trailing `#` comment with no line break after it is the shape of
    // `admin'#`: COMMENT_TRUNCATION, as `--` is in PostgreSQL.
    let f = one("SELECT 1 # trailing comment", MY);
    assert!(f.signals.contains(Signals::COMMENT_TRUNCATION) && f.parse_error.is_none());
}

#[test]
fn version_dependent_statements_say_why() {
    let f = one("select 1 /*!99999 ' */ union select 2 -- '", MY);
    let err = f.parse_error.unwrap_or_default();
    assert!(err.contains("version"), "{err}");
    // The ambiguity shows in the normalised text (each cut opener as a
    // quoted identifier, so the text reads back as the same tokens), and
    // cached facts stay a function of it.
    assert_eq!(f.normalized, "select ? `'` union select ? `--` `'`");
}

#[test]
fn normalised_text_holds_no_literal_or_comment() {
    // The proxy caches facts by normalised text, so it must determine the
    // tokens: read back, it holds no string (a cut quote would open one)
    // and no comment.
    let statements = CLIENT_STATEMENTS
        .iter()
        .map(|(sql, _, _)| *sql)
        .chain(FACTS.iter().map(|(sql, ..)| *sql))
        .chain([
            "select 1 /*!99999 ' */ union select 2 -- '",
            "select /*!99999 `*/` 1 'a' # b",
            "select 1 /*M! /* */ union select 2",
            "select * from t where a = 'x' # c",
        ]);
    for sql in statements {
        for opts in [MY, MY_NBE, MY_ANSI] {
            for f in analyze(sql, opts) {
                // (Save the truncation marker, a `--` closing the text.)
                let text = f.normalized.strip_suffix(TRUNCATION_MARKER);
                let text = text.unwrap_or(&f.normalized);
                let hidden = Lexer::new(text, opts).find(|t| {
                    matches!(
                        t.kind,
                        TokenKind::String | TokenKind::Comment | TokenKind::Ambiguous
                    )
                });
                assert_eq!(hidden, None, "{sql:?} -> {:?} with {opts:?}", f.normalized);
            }
        }
    }
}

#[test]
fn mode_fields_are_ignored_by_postgres() {
    use crate::lexer::test_options::PG;
    let odd = LexOptions {
        no_backslash_escapes: true,
        ansi_quotes: true,
        ..PG
    };
    for sql in [r"select 'a\' , 'b'", "select \"a\" from t", "select E'\\''"] {
        assert_eq!(analyze(sql, odd), analyze(sql, PG), "{sql}");
    }
}
