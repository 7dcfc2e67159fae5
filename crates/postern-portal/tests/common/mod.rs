//! The databases the storage tests run on: SQLite always, and PostgreSQL from
//! `POSTERN_TEST_POSTGRES` (scripts/test starts a private cluster and sets it; with
//! `POSTERN_REQUIRE_POSTGRES=1`, as there, a missing server fails the test instead of skipping).

use postern_portal::Db;

/// A new, empty PostgreSQL database for one test, or `None` when no server is configured.
pub async fn postgres() -> Option<Db> {
    let Ok(url) = std::env::var("POSTERN_TEST_POSTGRES") else {
        assert!(
            std::env::var("POSTERN_REQUIRE_POSTGRES").is_err(),
            "POSTERN_REQUIRE_POSTGRES is set but POSTERN_TEST_POSTGRES is not"
        );
        eprintln!("POSTERN_TEST_POSTGRES not set: PostgreSQL part skipped");
        return None;
    };
    let admin = Db::connect(&url).await.expect("the test PostgreSQL server");
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    let name = format!("postern_t_{}", u64::from_le_bytes(b));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap();
    Some(Db::connect(&format!("{base}/{name}")).await.unwrap())
}

/// SQLite in `dir`, then PostgreSQL when configured, each with its name.
pub async fn every_database(dir: &std::path::Path) -> Vec<(&'static str, Db)> {
    let mut v = vec![("sqlite", Db::sqlite(&dir.join("t.sqlite")).await.unwrap())];
    if let Some(pg) = postgres().await {
        v.push(("postgres", pg));
    }
    v
}
