//! RUN: a container of this engine from the step's image, with the
//! build's network and resources, its output streamed to the client as it
//! comes, committed when it succeeds.

use std::collections::BTreeMap;

use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use dockerfile::CommandForm;

use super::stage::Stage;
use super::{BUILD_LABEL, BuildError, Builder};
use crate::types::{Config, CreateRequest, Entrypoint, HostConfig, StrSlice};

impl Builder {
    pub(super) async fn run_step(
        &mut self,
        st: &mut Stage,
        cmd: &CommandForm,
    ) -> Result<(), BuildError> {
        let argv = self.command_list(st, cmd);
        let args = st.run_args();
        // The history and the cache key carry the build arguments the
        // command saw, as Docker's: "|2 A=1 B=2 /bin/sh -c …".
        let mut shown: Vec<String> = Vec::new();
        if !args.is_empty() {
            shown.push(format!("|{}", args.len()));
            shown.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        }
        shown.extend(argv.iter().cloned());
        let created_by = shown.join(" ");
        self.run_cmds.insert(created_by.clone(), shown);
        let key = super::cache::key(&[&st.image.id, "RUN", &created_by]);
        let cfg = st.image.config["config"].clone();
        if let Some(hit) = self.reuse(&key, &st.image, &created_by, &cfg).await? {
            self.out.stream(" ---> Using cache\n").await;
            st.image = hit;
            return Ok(());
        }
        if st.image.name.is_empty() {
            return Err(BuildError::Step(
                "RUN needs an image to run in: FROM scratch has no files yet".into(),
            ));
        }
        let cfg = &st.image.config["config"];
        let text = |k: &str| cfg[k].as_str().unwrap_or("").to_string();
        let mut env: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(
            self.opts
                .build_args
                .iter()
                .filter(|(k, _)| super::stage::PREDEFINED_ARGS.contains(&k.as_str()))
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))),
        );
        let mut labels = BTreeMap::new();
        labels.insert(BUILD_LABEL.to_string(), self.id.clone());
        let config = Config {
            image: st.image.id.clone(),
            cmd: StrSlice(argv.clone()),
            // The image's ENTRYPOINT does not wrap a RUN.
            entrypoint: Entrypoint::set(Vec::new()),
            env,
            user: text("User"),
            working_dir: text("WorkingDir"),
            labels,
            attach_stdout: true,
            attach_stderr: true,
            ..Default::default()
        };
        let o = &self.opts;
        let host_config = HostConfig {
            network_mode: if o.network_mode == "default" {
                String::new()
            } else {
                o.network_mode.clone()
            },
            extra_hosts: o.extra_hosts.clone().into(),
            shm_size: o.shm_size,
            memory: o.memory,
            memory_swap: o.memory_swap,
            cpu_shares: o.cpu_shares,
            cpu_period: o.cpu_period,
            cpu_quota: o.cpu_quota,
            cpuset_cpus: o.cpuset_cpus.clone(),
            cpuset_mems: o.cpuset_mems.clone(),
            ulimits: o.ulimits.clone().into(),
            ..Default::default()
        };
        let created = self
            .d
            .create(
                None,
                CreateRequest {
                    config,
                    host_config,
                    networking_config: Default::default(),
                    runtime: String::new(),
                },
                self.owner.clone(),
            )
            .await?;
        let id = created.id;
        self.intermediate.push(id.clone());
        self.out
            .stream(&format!(" ---> Running in {}\n", &id[..12]))
            .await;
        let code = self.run_attached(&id).await?;
        if code != 0 {
            // As Docker's classic builder: `rm` removes a step's container
            // after it succeeded; the failed one is kept to be looked into
            // (`docker commit`, `docker logs`) unless `forcerm` says not to.
            if self.opts.force_rm {
                self.remove_intermediate(&id).await;
            } else {
                self.keep_intermediate(&id).await;
            }
            return Err(BuildError::Command {
                cmd: argv.join(" "),
                code,
            });
        }
        let mut made = self
            .derive(&st.image, cfg.clone(), &created_by, Some(&id))
            .await;
        if let Ok(m) = &mut made {
            self.remember(&key, &st.image, m, &created_by);
        }
        if self.opts.rm || self.opts.force_rm || made.is_err() {
            self.out
                .stream(&format!("Removing intermediate container {}\n", &id[..12]))
                .await;
            self.remove_intermediate(&id).await;
        } else {
            self.keep_intermediate(&id).await;
        }
        st.image = made?;
        Ok(())
    }

    /// A step's container the user keeps: no longer the build's, so
    /// neither its end nor the engine's next start removes it.
    async fn keep_intermediate(&mut self, id: &str) {
        self.intermediate.retain(|c| c != id);
        if let Ok(e) = self.d.find(id) {
            let mut c = e.c.lock().await;
            c.config.labels.remove(BUILD_LABEL);
            if let Err(err) = c.save() {
                tracing::warn!("keeping build container {id}: {err}");
            }
        }
    }

    async fn remove_intermediate(&mut self, id: &str) {
        self.intermediate.retain(|c| c != id);
        if let Ok(e) = self.d.find(id)
            && let Err(err) = self.d.remove(&e, true, true).await
        {
            tracing::warn!("removing intermediate container {id}: {}", err.message);
        }
    }

    /// Starts the container with its output subscribed before the process
    /// runs, streams the output, and gives its exit status; a client that
    /// leaves kills it.
    async fn run_attached(&mut self, id: &str) -> Result<i32, BuildError> {
        let e = self.d.find(id)?;
        let (wtx, wrx) = tokio::sync::oneshot::channel();
        e.attach_waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wtx);
        let (d, e2) = (self.d.clone(), e.clone());
        let mut start = tokio::spawn(async move { d.start(&e2).await });
        let ack = tokio::select! {
            w = wrx => w.ok(),
            r = &mut start => {
                // The start failed before the task existed.
                return match r {
                    Ok(Ok(())) => Err(BuildError::Internal("the container started unseen".into())),
                    Ok(Err(err)) => Err(BuildError::Step(err.message)),
                    Err(err) => Err(BuildError::Internal(err.to_string())),
                };
            }
        };
        let output = self
            .d
            .lc
            .attach(
                api::AttachOpen {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                    stdin: false,
                    stdout: true,
                    stderr: true,
                },
                None,
            )
            .await;
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        let started = start
            .await
            .map_err(|err| BuildError::Internal(err.to_string()))?;
        if let Err(err) = started {
            return Err(BuildError::Step(err.message));
        }
        if let Ok(mut output) = output {
            loop {
                tokio::select! {
                    m = output.message() => match m {
                        Ok(Some(chunk)) => {
                            let text = String::from_utf8_lossy(&chunk.data);
                            // The classic builder shows a step's stderr in red.
                            if chunk.stream == pb::chunk::Stream::Stderr as i32 {
                                self.out.stream(&format!("\x1b[91m{text}\x1b[0m")).await;
                            } else {
                                self.out.stream(&text).await;
                            }
                        }
                        _ => break,
                    },
                    _ = self.out.gone() => {
                        let _ = self.d.kill(&e, "KILL").await;
                        return Err(BuildError::Cancelled);
                    }
                }
            }
        }
        let (code, err) = self.d.wait(&e, "not-running").await?;
        if !err.is_empty() && code != 0 {
            tracing::debug!("RUN {id}: {err}");
        }
        Ok(code)
    }
}
