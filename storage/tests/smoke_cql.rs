//! A real CQL round trip against the test bed's database (Cassandra 5 standing in for
//! ScyllaDB): create a keyspace and table, write with a TTL, read back, delete, drop.

use scylla::response::query_result::QueryRowsResult;
use wagu_storage::{cql, testbed};

#[tokio::test]
async fn smoke_cql_write_read_delete() {
    let Some(nodes) = testbed::service(testbed::CQL_NODES, "smoke_cql_write_read_delete") else {
        return;
    };
    let session = cql::connect(&cql::parse_nodes(&nodes))
        .await
        .unwrap_or_else(|e| panic!("CQL promised at {nodes} but unreachable: {e}"));
    cql::ping(&session).await.unwrap();
    let ks = format!("wagu_smoke_{}", rand::random::<u32>());
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            (),
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            format!("CREATE TABLE {ks}.kv (k text PRIMARY KEY, v text)"),
            (),
        )
        .await
        .unwrap();
    let insert = session
        .prepare(format!(
            "INSERT INTO {ks}.kv (k, v) VALUES (?, ?) USING TTL 600"
        ))
        .await
        .unwrap();
    let select = session
        .prepare(format!("SELECT v FROM {ks}.kv WHERE k = ?"))
        .await
        .unwrap();
    let delete = session
        .prepare(format!("DELETE FROM {ks}.kv WHERE k = ?"))
        .await
        .unwrap();
    session
        .execute_unpaged(&insert, ("a", "맛집"))
        .await
        .unwrap();
    let rows: QueryRowsResult = session
        .execute_unpaged(&select, ("a",))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let (v,): (String,) = rows.single_row().unwrap();
    assert_eq!(v, "맛집");
    session.execute_unpaged(&delete, ("a",)).await.unwrap();
    let rows = session
        .execute_unpaged(&select, ("a",))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert_eq!(rows.rows_num(), 0);
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), ())
        .await
        .unwrap();
}
