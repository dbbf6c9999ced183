//! `berth-ctr events`

use anyhow::Result;
use berth_proto::lifecycle::v1 as api;

use super::client::{Ctx, daemon, time};

#[derive(clap::Args)]
pub struct Args {
    /// topic==/tasks/exit, topic~=/tasks/, namespace==NAME
    #[arg(long = "filter")]
    pub filters: Vec<String>,
    /// One JSON object per event
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let mut s = ctx
        .events()
        .subscribe(ctx.req(api::SubscribeRequest { filters: a.filters }))
        .await
        .map_err(daemon)?
        .into_inner();
    while let Some(e) = s.message().await.map_err(daemon)? {
        let detail = match &e.event {
            Some(ev) => format!("{ev:?}"),
            None => String::new(),
        };
        if a.json {
            println!(
                "{}",
                serde_json::json!({"time": time(&e.timestamp), "namespace": e.namespace, "topic": e.topic, "event": detail})
            );
        } else {
            println!(
                "{} {} {} {}",
                time(&e.timestamp),
                e.namespace,
                e.topic,
                detail
            );
        }
    }
    Ok(0)
}
