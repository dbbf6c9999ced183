//! `berth-ctr run`: create a container, start its task attached, and with
//! --rm remove both when it exits.

use anyhow::Result;
use berth_proto::lifecycle::v1 as api;

use super::client::{Ctx, daemon};
use super::containers::{CreateArgs, build};
use super::tasks::start_task;

#[derive(clap::Args)]
pub struct Args {
    /// Return once started instead of attaching
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the task and container when the process exits
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

pub async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let container = build(ctx, &a.create).await?;
    let id = container.id.clone();
    ctx.containers()
        .create(ctx.req(api::CreateContainerRequest {
            container: Some(container),
        }))
        .await
        .map_err(daemon)?;
    let code = match start_task(ctx, &id, a.detach).await {
        Ok(code) => code,
        Err(e) => {
            // A task that never started leaves nothing behind.
            let mut t = ctx.tasks();
            let _ = t
                .delete(ctx.req(api::ProcessRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                }))
                .await;
            let _ = ctx
                .containers()
                .delete(ctx.req(api::ContainerRequest { id }))
                .await;
            return Err(e);
        }
    };
    if a.rm && !a.detach {
        ctx.tasks()
            .delete(ctx.req(api::ProcessRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            }))
            .await
            .map_err(daemon)?;
        ctx.containers()
            .delete(ctx.req(api::ContainerRequest { id }))
            .await
            .map_err(daemon)?;
    }
    Ok(code)
}
