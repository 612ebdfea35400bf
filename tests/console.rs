//! The web console's pages and its one mutating action, without a browser
//! (`compat/test_console.py` drives headless Chromium).

mod common;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir::console;

async fn commit(c: &mut Client, group: &str, offset: i64) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    assert_eq!(c.send(8, &req).await.topics[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn pages_show_the_data_and_reset_needs_token_and_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        c.create_topic("orders", 1, &[("retention.ms", "3600000")])
            .await,
        0
    );
    for i in 0..5 {
        let v = format!("order-{i}");
        c.produce(9, "orders", 0, batch(&[v.as_bytes()], i)).await;
    }
    c.produce(9, "orders", 0, batch(&[b"\xff<script>"], 9))
        .await;
    commit(&mut c, "billing", 2).await;
    let page = |path: &'static str, query: &'static str| {
        let broker = b.broker.clone();
        async move { console::get_page(&broker, path, query).await.unwrap() }
    };

    let overview = page("/", "").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains(b.broker.logs.cluster_id()));
    let topics = page("/topics", "").await.body;
    assert!(
        topics.contains("<a href=\"/topics/orders\">orders</a>"),
        "{topics}"
    );
    let orders = page("/topics/orders", "").await.body;
    assert!(
        orders.contains("<td class=\"value\">order-4</td>"),
        "{orders}"
    );
    assert!(orders.contains("retention.ms"));
    // Values are escaped: no markup from the data, invalid UTF-8 as \xNN.
    assert!(orders.contains("\\xff&lt;script&gt;"), "{orders}");
    assert!(!orders.contains("<script>"));
    let hex = page("/topics/orders", "format=hex&partition=0&offset=5&limit=1")
        .await
        .body;
    assert!(hex.contains("ff 3c 73 63"), "{hex}");
    let from = page("/topics/orders", "partition=0&offset=1&limit=2")
        .await
        .body;
    assert!(from.contains("order-1") && from.contains("order-2") && !from.contains("order-3"));
    let group = page("/groups/billing", "").await.body;
    assert!(
        group.contains(
            "<td class=\"committed\">2</td><td class=\"end\">6</td><td class=\"lag\">4</td>"
        ),
        "{group}"
    );
    assert!(group.contains(console::csrf_token()));
    assert_eq!(page("/topics/nope", "").await.status, 404);
    assert!(console::get_page(&b.broker, "/nothing", "").await.is_none());

    // Reset: token and confirmation required; then the offsets move.
    let post = |body: String| {
        let broker = b.broker.clone();
        async move {
            console::post(&broker, "/groups/billing/reset", &body)
                .await
                .unwrap()
        }
    };
    assert_eq!(post("to=latest&confirm=yes".into()).await.status, 403);
    assert_eq!(
        post("csrf=0000&to=latest&confirm=yes".into()).await.status,
        403
    );
    let token = console::csrf_token();
    assert_eq!(post(format!("csrf={token}&to=latest")).await.status, 400);
    assert_eq!(committed(&b, "billing").await, 2);
    let done = post(format!("csrf={token}&to=latest&confirm=yes")).await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location.as_deref(), Some("/groups/billing"));
    assert_eq!(committed(&b, "billing").await, 6);
    post(format!("csrf={token}&to=earliest&confirm=yes")).await;
    assert_eq!(committed(&b, "billing").await, 0);
    b.stop().await;
}

async fn committed(b: &TestBroker, group: &str) -> i64 {
    b.broker.groups.committed(group).await[0].2
}
