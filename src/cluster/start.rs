//! Starting a cluster: the run network, the nodes (created through testcontainers with their
//! files, labels and host ports), the network helpers, and the readiness wait; whatever fails
//! on the way, `Cluster::up` leaves nothing behind (the `Drop` of the half-built cluster).

use super::*;

impl Cluster {
    /// Creates the run network and the nodes, starts them, and waits until every node passes its
    /// readiness probe. On any failure (and on cancellation) everything created is removed.
    pub async fn up(system: System, opts: ClusterOptions) -> Result<Cluster> {
        let t0 = Instant::now();
        let docker = docker::connect()?;
        crate::images::require_image(&docker, &system.image).await?;
        if opts.net_helpers && opts.helper_image.is_none() {
            bail!("network helpers need ClusterOptions::helper_image (faultline's image)");
        }
        if let Some(image) = &opts.helper_image {
            crate::images::require_image(&docker, image).await?;
        }
        let run_id = opts
            .run_id
            .clone()
            .unwrap_or_else(|| new_run_id(&system.name));
        let network = format!("fl-{run_id}");
        LIVE_RUNS
            .lock()
            .expect("live runs lock")
            .push(run_id.clone());
        // From here on, Drop removes whatever exists, whatever happens next.
        let mut cluster = Cluster {
            docker,
            run_id,
            network,
            system,
            nodes: vec![],
            containers: HashMap::new(),
            net_helpers: HashMap::new(),
            helper_image: opts.helper_image.clone(),
            ips: Mutex::new(HashMap::new()),
            logs_dir: opts.logs_dir.clone(),
            ready_in: Duration::ZERO,
            torn_down: false,
        };
        cluster.create_network().await?;
        let staged = StagedFiles::new(&cluster.run_id)?;
        let specs = cluster.system.nodes.clone();
        let launches = specs
            .iter()
            .map(|spec| cluster.launch_node(spec, &opts, &staged));
        let launched = futures_util::future::join_all(launches).await;
        for launch in launched {
            let (node, container) = launch?;
            cluster.containers.insert(node.name.clone(), container);
            cluster.nodes.push(node);
        }
        let ready_timeout = opts.ready_timeout.unwrap_or(cluster.system.ready_timeout);
        if let Err(e) = cluster.wait_ready(ready_timeout).await {
            if let Some(dir) = cluster.logs_dir.clone() {
                let _ = cluster.collect_logs(&dir).await;
            }
            return Err(e);
        }
        if opts.net_helpers {
            cluster.start_net_helpers().await?;
        }
        cluster.ready_in = t0.elapsed();
        Ok(cluster)
    }

    /// A network helper for every node faults may target (`net_helper.rs`).
    pub(super) async fn start_net_helpers(&mut self) -> Result<()> {
        let image = self
            .helper_image
            .clone()
            .context("network helpers need a helper image")?;
        let targets: Vec<Node> = self
            .nodes
            .iter()
            .filter(|n| n.role != links::PROXY_ROLE)
            .cloned()
            .collect();
        let starts = targets.iter().map(|n| {
            net_helper::NetHelper::start(
                &self.docker,
                &image,
                &self.run_id,
                &self.system.name,
                &n.name,
                &n.container_id,
                &n.container_name,
            )
        });
        let started = futures_util::future::join_all(starts).await;
        for (n, helper) in targets.iter().zip(started) {
            self.net_helpers.insert(n.name.clone(), helper?);
        }
        Ok(())
    }

    pub(super) async fn create_network(&self) -> Result<()> {
        self.docker
            .create_network(NetworkCreateRequest {
                name: self.network.clone(),
                driver: Some("bridge".into()),
                labels: Some(docker::run_labels(&self.run_id, &self.system.name)),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating network {}", self.network))?;
        Ok(())
    }

    pub(super) fn container_name(&self, node: &str) -> String {
        format!("fl-{}-{node}", self.run_id)
    }

    /// What testcontainers is asked to make for one node: image, name, host name, run network,
    /// labels, command, environment, files, loopback ports, NET_ADMIN and `ClusterOptions::cap_add`.
    pub(super) fn node_request(
        &self,
        spec: &NodeSpec,
        opts: &ClusterOptions,
        ports: &BTreeMap<String, (u16, u16)>,
        files: &[(String, CopyDataSource)],
    ) -> ContainerRequest<GenericImage> {
        let is_proxy = spec.role == links::PROXY_ROLE;
        let image = match (&self.helper_image, is_proxy) {
            (Some(helper), true) => helper,
            _ => &self.system.image,
        };
        let (repository, tag) = image_parts(image);
        let mut labels = docker::run_labels(&self.run_id, &self.system.name);
        labels.insert(docker::LABEL_NODE.into(), spec.name.clone());
        let mut request = GenericImage::new(repository, tag)
            .with_container_name(self.container_name(&spec.name))
            .with_hostname(spec.name.clone())
            .with_network(self.network.clone())
            .with_labels(labels)
            .with_cmd(spec.cmd.clone())
            .with_startup_timeout(Duration::from_secs(NODE_START_TIMEOUT_S));
        // With network helpers the helper holds NET_ADMIN, not the node.
        if !opts.net_helpers || is_proxy {
            request = request.with_cap_add("NET_ADMIN");
        }
        for (k, v) in spec.env.iter().chain(opts.env.iter()) {
            request = request.with_env_var(k.clone(), v.clone());
        }
        for cap in &opts.cap_add {
            request = request.with_cap_add(cap.clone());
        }
        for (container_port, host_port) in ports.values() {
            request = request.with_mapped_port(*host_port, container_port.tcp());
        }
        // testcontainers publishes mapped ports on every interface; nodes listen on loopback only.
        let bindings = port_bindings(ports);
        request = request.with_host_config_modifier(move |host| {
            host.port_bindings = Some(bindings.clone());
        });
        for (target, source) in files {
            request = request.with_copy_to(target.clone(), source.clone());
        }
        request
    }

    /// Creates and starts one node. If Docker says a host port picked for it was taken by
    /// another process meanwhile, the container is removed and made again with other ports
    /// (bounded attempts).
    pub(super) async fn launch_node(
        &self,
        spec: &NodeSpec,
        opts: &ClusterOptions,
        staged: &StagedFiles,
    ) -> Result<(Node, NodeContainer)> {
        let name = self.container_name(&spec.name);
        let keep = NodeFile {
            path: format!("{}/.keep", spec.data_dir),
            contents: vec![],
            mode: 0o644,
        };
        let files = spec
            .files
            .iter()
            .chain(opts.files.iter())
            .chain([&keep])
            .map(|f| Ok((f.path.clone(), staged.source(&spec.name, f)?)))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("staging the files of node {}", spec.name))?;
        let mut attempt = 1;
        loop {
            let ports = pick_host_ports(&spec.ports)?;
            let request = self.node_request(spec, opts, &ports, &files);
            match request.start().await {
                Ok(container) => {
                    let node = Node {
                        name: spec.name.clone(),
                        role: spec.role.clone(),
                        container_id: container.id().to_string(),
                        container_name: name,
                        ports,
                    };
                    return Ok((node, container));
                }
                Err(e) if attempt < PORT_PICK_ATTEMPTS_MAX && is_port_taken(&e.to_string()) => {
                    attempt += 1;
                    // A failed start leaves the created container behind: remove it by name.
                    docker::remove_container(&self.docker, &name)
                        .await
                        .with_context(|| format!("removing node {} to retry", spec.name))?;
                }
                Err(e) => return Err(anyhow!("starting node {}: {e}", spec.name)),
            }
        }
    }

    /// Copies files into an existing container (testcontainers copies only at creation).
    pub(super) async fn upload(&self, container: &str, files: &[NodeFile]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let tar = tar_of(files)?;
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: "/".into(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await?;
        Ok(())
    }
}
