//! Discovery's MySQL/MariaDB side: connect over TCP, list the tables and
//! views of the DSN's database (or of every non-system database) with their
//! columns, and sample rows with the text protocol. Owns the SQL it sends
//! and the quoting of identifiers in it. Read-only: the session is put in
//! `TRANSACTION READ ONLY` and only ever runs `select`; sampled values go to
//! the column evidence and nowhere else.

use danxia_detectors::pii::Scanner;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Params, Row, Value};

use super::classify::{ColumnEvidence, MAX_VALUE_CHARS};
use super::dsn::Dsn;
use super::{error_chain, DiscoverError, SampleError, Table, CONNECT_TIMEOUT, STATEMENT_TIMEOUT};

/// Databases that belong to the server, never scanned.
const SYSTEM_DATABASES: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// An open, read-only discovery session.
pub struct Mysql {
    conn: Conn,
    /// `host:port`, for messages.
    target: String,
    /// The DSN's database, if any.
    database: Option<String>,
}

/// Connects as the DSN says (TCP, no TLS) and prepares the session:
/// read-only and, where the server supports it, [`STATEMENT_TIMEOUT`] per
/// statement.
pub async fn connect(dsn: &Dsn) -> Result<Mysql, DiscoverError> {
    let target = dsn.address();
    let opts = OptsBuilder::default()
        .ip_or_hostname(dsn.host.clone())
        .tcp_port(dsn.port)
        .user(Some(dsn.user.clone()))
        .pass(dsn.password.clone())
        .db_name(dsn.database.clone())
        // Stay on the TCP address we were given: no switch to a local socket.
        .prefer_socket(false)
        .stmt_cache_size(0);
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(connect_error(dsn, &e)),
        Err(_) => {
            return Err(DiscoverError::Connect {
                product: "MySQL/MariaDB",
                target,
                reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
                fix: "check the host and port in --dsn and that the server is running",
            })
        }
    };
    let secs = STATEMENT_TIMEOUT.as_secs();
    // MariaDB's per-statement limit, else MySQL's (SELECT only, in ms);
    // a server with neither just runs without one.
    let timeouts = [
        format!("SET SESSION max_statement_time = {secs}"),
        format!("SET SESSION max_execution_time = {}", secs * 1000),
    ];
    let mut limited = false;
    for sql in &timeouts {
        match conn.query_drop(sql.as_str()).await {
            Ok(()) => {
                limited = true;
                break;
            }
            Err(mysql_async::Error::Server(e)) => {
                tracing::debug!(error = %e, "discover: {sql} not supported");
            }
            Err(e) => return Err(lost(&target, &e)),
        }
    }
    if !limited {
        tracing::warn!(
            "discover: this server has no per-statement time limit; samples run unbounded in time"
        );
    }
    conn.query_drop("SET SESSION TRANSACTION READ ONLY")
        .await
        .map_err(|e| lost(&target, &e))?;
    Ok(Mysql {
        conn,
        target,
        database: dsn.database.clone(),
    })
}

impl Mysql {
    /// Every table and view with its columns, of the DSN's database or of
    /// every non-system database, narrowed to `schemas` (database names)
    /// when that is not empty; ordered by database, table and column
    /// position.
    pub async fn tables(&mut self, schemas: &[String]) -> Result<Vec<Table>, DiscoverError> {
        let system = SYSTEM_DATABASES
            .iter()
            .map(|d| format!("'{d}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns \
             WHERE table_schema NOT IN ({system})"
        );
        let mut params: Vec<Value> = Vec::new();
        if let Some(db) = &self.database {
            sql.push_str(" AND table_schema = ?");
            params.push(Value::from(db.as_str()));
        }
        sql.push_str(" ORDER BY table_schema, table_name, ordinal_position");
        let params = if params.is_empty() {
            Params::Empty
        } else {
            Params::Positional(params)
        };
        let rows: Vec<Row> =
            self.conn
                .exec(sql, params)
                .await
                .map_err(|e| DiscoverError::Catalogue {
                    target: self.target.clone(),
                    reason: error_chain(&e),
                })?;
        let mut tables: Vec<Table> = Vec::new();
        for row in &rows {
            let (Some(schema), Some(name), Some(column)) =
                (text(row, 0), text(row, 1), text(row, 2))
            else {
                continue;
            };
            if !schemas.is_empty() && !schemas.contains(&schema) {
                continue;
            }
            Table::push_column(&mut tables, schema, name, column);
        }
        Ok(tables)
    }

    /// Samples at most `limit` rows of `table` with the text protocol, each
    /// value cut to [`MAX_VALUE_CHARS`] characters by the server, and feeds
    /// every non-NULL value to its column's evidence. Returns the number of
    /// rows read.
    pub async fn sample(
        &mut self,
        table: &Table,
        limit: u64,
        scanner: &Scanner,
        columns: &mut [ColumnEvidence],
    ) -> Result<u64, SampleError> {
        let sql = sample_sql(table, limit);
        let target = &self.target;
        let mut result = self
            .conn
            .query_iter(sql)
            .await
            .map_err(|e| sample_error(target, e))?;
        let mut rows = 0u64;
        while let Some(row) = result.next().await.map_err(|e| sample_error(target, e))? {
            rows += 1;
            for (i, evidence) in columns.iter_mut().enumerate() {
                match row.as_ref(i) {
                    Some(Value::NULL) | None => {}
                    Some(Value::Bytes(b)) => evidence.observe(scanner, b),
                    // The text protocol sends every value as bytes; should
                    // a driver ever decode one, scan its SQL text form.
                    Some(other) => evidence.observe(scanner, other.as_sql(true).as_bytes()),
                }
            }
        }
        Ok(rows)
    }

    /// Closes the session politely.
    pub async fn close(self) {
        if let Err(e) = self.conn.disconnect().await {
            tracing::debug!(error = %e, "discover: MySQL disconnect");
        }
    }
}

/// Column `i` of a catalogue row as text (names are UTF-8 in the
/// data dictionary; anything else is shown lossily rather than dropped).
fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// `SELECT LEFT(`c`, n), … FROM `db`.`t` LIMIT n`.
fn sample_sql(table: &Table, limit: u64) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("LEFT({}, {MAX_VALUE_CHARS})", quote(c)))
        .collect();
    format!(
        "SELECT {} FROM {}.{} LIMIT {limit}",
        columns.join(", "),
        quote(&table.schema),
        quote(&table.name)
    )
}

/// A MySQL quoted identifier: `` ` `` doubled inside backquotes.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn lost(target: &str, e: &mysql_async::Error) -> DiscoverError {
    DiscoverError::ConnectionLost {
        target: target.to_string(),
        reason: error_chain(e),
    }
}

/// A server's refusal skips the table; anything else ends the run.
fn sample_error(target: &str, e: mysql_async::Error) -> SampleError {
    match e {
        mysql_async::Error::Server(s) => SampleError::Table(server_message(&s)),
        e => SampleError::Fatal(lost(target, &e)),
    }
}

fn server_message(s: &mysql_async::ServerError) -> String {
    format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state)
}

/// What went wrong connecting, and what to change.
fn connect_error(dsn: &Dsn, e: &mysql_async::Error) -> DiscoverError {
    let (reason, fix) = match e {
        mysql_async::Error::Server(s) => (
            server_message(s),
            match s.code {
                // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
                1045 | 1698 => "check the user and password in --dsn (or MYSQL_PWD)",
                // ER_DBACCESS_DENIED_ERROR
                1044 => "grant the user access to the database, or name another in --dsn",
                // ER_BAD_DB_ERROR
                1049 => "check the database name in --dsn",
                // ER_HOST_NOT_PRIVILEGED
                1130 => "the server does not let this user connect from this host",
                _ => "check the --dsn and the server's log",
            },
        ),
        e => (
            error_chain(e),
            "check the host and port in --dsn and that the server is running",
        ),
    };
    DiscoverError::Connect {
        product: "MySQL/MariaDB",
        target: format!("{} as user {:?}", dsn.address(), dsn.user),
        reason,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sql_quotes_every_identifier() {
        let t = Table {
            schema: "test".into(),
            name: "t`; drop table x".into(),
            columns: vec!["a".into(), "b`c".into()],
        };
        assert_eq!(
            sample_sql(&t, 7),
            "SELECT LEFT(`a`, 65536), LEFT(`b``c`, 65536) FROM `test`.`t``; drop table x` LIMIT 7"
        );
    }
}
