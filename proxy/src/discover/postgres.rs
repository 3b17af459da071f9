//! Discovery's PostgreSQL side: connect, list the user tables and views
//! with their columns, and sample rows as text. Owns the SQL it sends and
//! the quoting of identifiers in it. Read-only by construction: the
//! session is put in `default_transaction_read_only` and only ever runs
//! `select`; sampled values go to the column evidence and nowhere else.

use std::pin::pin;

use danxia_detectors::pii::Scanner;
use futures_util::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::classify::{ColumnEvidence, MAX_VALUE_CHARS};
use super::dsn::Dsn;
use super::{error_chain, DiscoverError, SampleError, Table, CONNECT_TIMEOUT, STATEMENT_TIMEOUT};

/// Relation kinds sampled: tables, partitioned tables, views, materialized
/// views. Foreign tables are left out: sampling them reaches other servers.
const RELKINDS: &str = "'r', 'p', 'v', 'm'";

/// An open, read-only discovery session.
pub struct Postgres {
    client: Client,
    /// `host:port`, for messages.
    target: String,
}

/// Connects as the DSN says (no TLS) and prepares the session: read-only,
/// [`STATEMENT_TIMEOUT`] per statement.
pub async fn connect(dsn: &Dsn) -> Result<Postgres, DiscoverError> {
    let target = dsn.address();
    let mut config = Config::new();
    config
        .host(&dsn.host)
        .port(dsn.port)
        .user(&dsn.user)
        .dbname(dsn.database.as_deref().unwrap_or(&dsn.user))
        .application_name("danxia-discover")
        .ssl_mode(tokio_postgres::config::SslMode::Disable)
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(p) = &dsn.password {
        config.password(p);
    }
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls)).await;
    let (client, connection) = match connected {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(connect_error(dsn, &e)),
        Err(_) => {
            return Err(DiscoverError::Connect {
                product: "PostgreSQL",
                target,
                reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
                fix: "check the host and port in --dsn and that the server is running",
            })
        }
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %error_chain(&e), "discover: PostgreSQL connection ended");
        }
    });
    let setup = format!(
        "set statement_timeout = '{}s'; set default_transaction_read_only = on",
        STATEMENT_TIMEOUT.as_secs()
    );
    client
        .batch_execute(&setup)
        .await
        .map_err(|e| DiscoverError::Catalogue {
            target: target.clone(),
            reason: describe(&e),
        })?;
    Ok(Postgres { client, target })
}

impl Postgres {
    /// Every table and view with its columns in non-system schemas (all
    /// of them, or those in `schemas` when it is not empty), ordered by
    /// schema, table and column position.
    pub async fn tables(&self, schemas: &[String]) -> Result<Vec<Table>, DiscoverError> {
        let sql = format!(
            "select n.nspname::text, c.relname::text, a.attname::text
             from pg_catalog.pg_class c
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             join pg_catalog.pg_attribute a
               on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
             where c.relkind in ({RELKINDS})
               and n.nspname not in ('pg_catalog', 'information_schema')
               and n.nspname not like 'pg\\_toast%'
               and n.nspname not like 'pg\\_temp\\_%'
               and (cardinality($1::text[]) = 0 or n.nspname::text = any($1::text[]))
             order by n.nspname, c.relname, a.attnum"
        );
        let schemas: Vec<&str> = schemas.iter().map(String::as_str).collect();
        let rows =
            self.client
                .query(&sql, &[&schemas])
                .await
                .map_err(|e| DiscoverError::Catalogue {
                    target: self.target.clone(),
                    reason: describe(&e),
                })?;
        let mut tables: Vec<Table> = Vec::new();
        for row in rows {
            let (Ok(schema), Ok(name), Ok(column)) = (
                row.try_get::<_, String>(0),
                row.try_get::<_, String>(1),
                row.try_get::<_, String>(2),
            ) else {
                continue; // `::text` of a name: cannot fail
            };
            Table::push_column(&mut tables, schema, name, column);
        }
        Ok(tables)
    }

    /// Samples at most `limit` rows of `table` with the simple-query (text)
    /// protocol, each value cut to [`MAX_VALUE_CHARS`] characters by the
    /// server, and feeds every non-NULL value to its column's evidence.
    /// Returns the number of rows read.
    pub async fn sample(
        &self,
        table: &Table,
        limit: u64,
        scanner: &Scanner,
        columns: &mut [ColumnEvidence],
    ) -> Result<u64, SampleError> {
        let sql = sample_sql(table, limit);
        let stream = self
            .client
            .simple_query_raw(&sql)
            .await
            .map_err(|e| self.sample_error(e))?;
        let mut stream = pin!(stream);
        let mut rows = 0u64;
        while let Some(message) = stream.next().await {
            if let SimpleQueryMessage::Row(row) = message.map_err(|e| self.sample_error(e))? {
                rows += 1;
                for (i, evidence) in columns.iter_mut().enumerate() {
                    if let Ok(Some(value)) = row.try_get(i) {
                        evidence.observe(scanner, value.as_bytes());
                    }
                }
            }
        }
        Ok(rows)
    }

    /// A failed sample: the server's refusal skips the table; a broken
    /// connection ends the run.
    fn sample_error(&self, e: tokio_postgres::Error) -> SampleError {
        if e.as_db_error().is_some() && !e.is_closed() {
            SampleError::Table(describe(&e))
        } else {
            SampleError::Fatal(DiscoverError::ConnectionLost {
                target: self.target.clone(),
                reason: describe(&e),
            })
        }
    }
}

/// `select left(("c")::text, n), … from "s"."t" limit n`.
fn sample_sql(table: &Table, limit: u64) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("pg_catalog.left(({})::text, {MAX_VALUE_CHARS})", quote(c)))
        .collect();
    format!(
        "select {} from {}.{} limit {limit}",
        columns.join(", "),
        quote(&table.schema),
        quote(&table.name)
    )
}

/// A PostgreSQL quoted identifier: `"` doubled inside double quotes.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The server's message and SQLSTATE for a database error, else the
/// error chain.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error_chain(e),
    }
}

/// What went wrong connecting, and what to change.
fn connect_error(dsn: &Dsn, e: &tokio_postgres::Error) -> DiscoverError {
    let fix = match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD => {
            "check the user and password in --dsn (or PGPASSWORD)"
        }
        Some(c) if c.code().starts_with("28") => {
            "check the user in --dsn and that pg_hba.conf lets it connect from this host"
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => "check the database name in --dsn",
        Some(_) => "check the --dsn and the server's log",
        None if error_chain(e).contains("password missing") => {
            "the server asks for a password: put it in --dsn or PGPASSWORD"
        }
        None => "check the host and port in --dsn and that the server is running",
    };
    DiscoverError::Connect {
        product: "PostgreSQL",
        target: format!("{} as user {:?}", dsn.address(), dsn.user),
        reason: describe(e),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sql_quotes_every_identifier() {
        let t = Table {
            schema: "My\"Schema".into(),
            name: "t; drop table x".into(),
            columns: vec!["a".into(), "B \"q\"".into()],
        };
        assert_eq!(
            sample_sql(&t, 10),
            "select pg_catalog.left((\"a\")::text, 65536), \
             pg_catalog.left((\"B \"\"q\"\"\")::text, 65536) \
             from \"My\"\"Schema\".\"t; drop table x\" limit 10"
        );
    }
}
