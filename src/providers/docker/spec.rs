//! What a new replica is created from: an existing container's configuration,
//! relative to its image.
//!
//! Owns turning an inspected container (and its image) into a [`ReplicaSpec`]
//! (the settings the container's creator gave, with what the image supplies
//! left out, so a redeploy to another image picks up that image's defaults),
//! applying a redeploy's changes to a spec, turning a spec into the engine's
//! create request (the configured port published on 127.0.0.1), and image
//! reference arithmetic (`web:v1` + version `v2` → `web:v2`). Pure functions:
//! must not talk to the engine.
use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, ImageInspect,
    NetworkingConfig, PortBinding,
};
use serde::{Deserialize, Serialize};

use super::client::{LABEL_ACTION, LABEL_PREVIOUS_IMAGE, LABEL_REPLACES, PER_CONTAINER_LABELS};

/// The address replicas publish their ports on.
pub const HOST_IP: &str = "127.0.0.1";

/// A network a replica joins, with its aliases there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// How to create one more replica like an existing one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSpec {
    /// Image reference (`repo:tag`) or id.
    pub image: String,
    /// Container and host config as the engine takes it, with everything the
    /// image supplies left out (`Image` and networking are set at create).
    pub config: ContainerCreateBody,
    /// Aliases on the primary network (the host config's network mode), if
    /// that is a user-defined network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_aliases: Vec<String>,
    /// Further networks, connected after create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_networks: Vec<NetworkAttachment>,
    /// Host port the configured container port was published on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

/// The changes a redeploy makes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// New image reference (already resolved against the current repository).
    pub image: Option<String>,
    /// New command (`Cmd`; the entrypoint stays).
    pub command: Option<Vec<String>>,
    /// Variables set (added or replaced).
    pub env: BTreeMap<String, String>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.image.is_none() && self.command.is_none() && self.env.is_empty()
    }
}

fn is_builtin_network(mode: &str) -> bool {
    matches!(mode, "" | "default" | "bridge" | "host" | "none") || mode.starts_with("container:")
}

/// `/other:/me/alias` (how inspect shows a legacy link) → `other:alias`.
fn link_for_create(link: &str) -> String {
    match link.split_once(':') {
        Some((src, dst)) => {
            let src = src.trim_start_matches('/');
            let alias = dst.rsplit('/').next().unwrap_or(dst);
            format!("{src}:{alias}")
        }
        None => link.trim_start_matches('/').to_string(),
    }
}

impl ReplicaSpec {
    /// The spec of an inspected container. `image` is its image's inspect
    /// document, if available: the settings that equal the image's are left
    /// out. `image_ref` is the reference new replicas use.
    pub fn from_container(
        c: &ContainerInspectResponse,
        image: Option<&ImageInspect>,
        image_ref: &str,
        port: u16,
    ) -> Self {
        let cfg = c.config.clone().unwrap_or_default();
        let img = image.and_then(|i| i.config.clone()).unwrap_or_default();
        let id = c.id.clone().unwrap_or_default();
        let short_id: String = id.chars().take(12).collect();
        let name = c
            .name
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();

        let img_env: std::collections::HashSet<&String> = img.env.iter().flatten().collect();
        let env: Vec<String> = cfg
            .env
            .iter()
            .flatten()
            .filter(|e| !img_env.contains(e))
            .cloned()
            .collect();
        let entrypoint = cfg
            .entrypoint
            .clone()
            .filter(|e| Some(e) != img.entrypoint.as_ref() && !e.is_empty());
        // The engine uses the image's Cmd only when no entrypoint is given.
        let cmd = cfg
            .cmd
            .clone()
            .filter(|c| entrypoint.is_some() || Some(c) != img.cmd.as_ref());
        let img_labels = img.labels.clone().unwrap_or_default();
        let labels: HashMap<String, String> = cfg
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, v)| {
                !PER_CONTAINER_LABELS.contains(&k.as_str()) && img_labels.get(k) != Some(v)
            })
            .collect();
        let img_volumes = img.volumes.clone().unwrap_or_default();
        let volumes: Vec<String> = cfg
            .volumes
            .iter()
            .flatten()
            .filter(|v| !img_volumes.contains(v))
            .cloned()
            .collect();
        let img_ports = img.exposed_ports.clone().unwrap_or_default();
        let exposed: Vec<String> = cfg
            .exposed_ports
            .iter()
            .flatten()
            .filter(|p| !img_ports.contains(p))
            .cloned()
            .collect();
        let differs = |a: &Option<String>, b: &Option<String>| {
            a.clone().filter(|v| !v.is_empty() && Some(v) != b.as_ref())
        };

        let mut host = c.host_config.clone().unwrap_or_default();
        host.container_id_file = None;
        host.links = host
            .links
            .take()
            .map(|l| l.iter().map(|x| link_for_create(x)).collect());
        // Ports are rewritten at create; keep which container ports were published.
        let published: Vec<String> = host
            .port_bindings
            .as_ref()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        host.port_bindings = Some(
            published
                .into_iter()
                .map(|k| (k, Some(Vec::new())))
                .collect(),
        );

        let mode = host.network_mode.clone().unwrap_or_default();
        let networks = c
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.clone())
            .unwrap_or_default();
        let clean_aliases = |e: &EndpointSettings| -> Vec<String> {
            e.aliases
                .iter()
                .flatten()
                .filter(|a| **a != short_id && **a != name && !id.starts_with(a.as_str()))
                .cloned()
                .collect()
        };
        let primary_name = if mode == "default" {
            "bridge"
        } else {
            mode.as_str()
        };
        let primary_aliases = if is_builtin_network(&mode) {
            Vec::new()
        } else {
            networks.get(&mode).map(clean_aliases).unwrap_or_default()
        };
        let mut extra_networks: Vec<NetworkAttachment> =
            if mode == "host" || mode == "none" || mode.starts_with("container:") {
                Vec::new()
            } else {
                networks
                    .iter()
                    .filter(|(n, _)| n.as_str() != primary_name)
                    .map(|(n, e)| NetworkAttachment {
                        name: n.clone(),
                        aliases: clean_aliases(e),
                    })
                    .collect()
            };
        extra_networks.sort_by(|a, b| a.name.cmp(&b.name));

        let hostname = cfg
            .hostname
            .clone()
            .filter(|h| !h.is_empty() && *h != short_id);
        let config = ContainerCreateBody {
            hostname,
            domainname: cfg.domainname.clone().filter(|d| !d.is_empty()),
            user: differs(&cfg.user, &img.user),
            attach_stdin: cfg.attach_stdin,
            attach_stdout: cfg.attach_stdout,
            attach_stderr: cfg.attach_stderr,
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            tty: cfg.tty,
            open_stdin: cfg.open_stdin,
            stdin_once: cfg.stdin_once,
            env: (!env.is_empty()).then_some(env),
            cmd,
            healthcheck: cfg
                .healthcheck
                .clone()
                .filter(|h| Some(h) != img.healthcheck.as_ref()),
            volumes: (!volumes.is_empty()).then_some(volumes),
            working_dir: differs(&cfg.working_dir, &img.working_dir),
            entrypoint,
            network_disabled: cfg.network_disabled,
            labels: Some(labels),
            stop_signal: differs(&cfg.stop_signal, &img.stop_signal),
            stop_timeout: cfg.stop_timeout,
            host_config: Some(host),
            ..Default::default()
        };
        ReplicaSpec {
            image: image_ref.to_string(),
            config,
            primary_aliases,
            extra_networks,
            host_port: super::client::host_port_of(c, port),
        }
    }

    /// This spec with a redeploy's changes applied.
    pub fn with_change(&self, change: &Change) -> Self {
        let mut s = self.clone();
        if let Some(image) = &change.image {
            s.image = image.clone();
        }
        if let Some(cmd) = &change.command {
            s.config.cmd = Some(cmd.clone());
        }
        if !change.env.is_empty() {
            let mut env: Vec<String> = s
                .config
                .env
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| {
                    let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
                    !change.env.contains_key(key)
                })
                .collect();
            env.extend(change.env.iter().map(|(k, v)| format!("{k}={v}")));
            s.config.env = Some(env);
        }
        s
    }

    /// The value of a label new replicas get.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .map(String::as_str)
    }

    /// The engine's create request for a new replica: this spec, the
    /// per-container labels, and `port/tcp` published on 127.0.0.1 at
    /// `host_port` (or a port the engine picks). Other published container
    /// ports get engine-picked host ports on 127.0.0.1 (a fixed one would
    /// collide between replicas).
    pub fn create_body(
        &self,
        port: u16,
        host_port: Option<u16>,
        per_container: &BTreeMap<String, String>,
    ) -> ContainerCreateBody {
        let mut body = self.config.clone();
        body.image = Some(self.image.clone());
        let mut labels = body.labels.take().unwrap_or_default();
        for k in [LABEL_ACTION, LABEL_REPLACES, LABEL_PREVIOUS_IMAGE] {
            labels.remove(k);
        }
        labels.extend(per_container.iter().map(|(k, v)| (k.clone(), v.clone())));
        body.labels = Some(labels);

        let key = format!("{port}/tcp");
        let mut exposed = body.exposed_ports.take().unwrap_or_default();
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        body.exposed_ports = Some(exposed);

        let mut host: HostConfig = body.host_config.take().unwrap_or_default();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = host
            .port_bindings
            .take()
            .unwrap_or_default()
            .into_keys()
            .map(|k| {
                (
                    k,
                    Some(vec![PortBinding {
                        host_ip: Some(HOST_IP.into()),
                        host_port: Some(String::new()),
                    }]),
                )
            })
            .collect();
        bindings.insert(
            key,
            Some(vec![PortBinding {
                host_ip: Some(HOST_IP.into()),
                host_port: Some(host_port.map(|p| p.to_string()).unwrap_or_default()),
            }]),
        );
        host.port_bindings = Some(bindings);
        let mode = host.network_mode.clone().unwrap_or_default();
        body.host_config = Some(host);
        if !is_builtin_network(&mode) {
            body.networking_config = Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    mode,
                    EndpointSettings {
                        aliases: (!self.primary_aliases.is_empty())
                            .then(|| self.primary_aliases.clone()),
                        ..Default::default()
                    },
                )])),
            });
        }
        body
    }
}

/// `repo[:tag][@digest]` → `repo` (a registry port's `:` is kept).
pub fn repository(image: &str) -> Option<&str> {
    if image.starts_with("sha256:") || image.is_empty() {
        return None;
    }
    let no_digest = image.split_once('@').map_or(image, |(r, _)| r);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => Some(&no_digest[..last_slash + i]),
        None => Some(no_digest),
    }
}

/// The tag of `repo:tag` (`latest` when none is given; `None` for ids and digests).
pub fn tag(image: &str) -> Option<&str> {
    if image.contains('@') || image.starts_with("sha256:") {
        return None;
    }
    let repo = repository(image)?;
    Some(image.get(repo.len() + 1..).unwrap_or("latest")).filter(|t| !t.is_empty())
}

/// The image a redeploy's `version` names, given the current image: a
/// reference if it contains `:` or `/`, else a tag on the current repository.
pub fn resolve_version(current: &str, version: &str) -> Result<String, String> {
    let v = version.trim();
    if v.is_empty() {
        return Err("version: empty".into());
    }
    if v.contains(':') || v.contains('/') || v.contains('@') {
        return Ok(v.to_string());
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        || v.len() > 128
    {
        return Err(format!("version {v:?} is not a valid image tag"));
    }
    let repo = repository(current).ok_or_else(|| {
        format!(
            "version {v:?}: the containers run image {current:?}, which has no repository to \
             put the tag on; give a full image reference"
        )
    })?;
    Ok(format!("{repo}:{v}"))
}

/// `KEY=value` entries as a map (later entries win, as in the engine).
pub fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

/// A container name for the target (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn name_prefix(target: &str) -> String {
    let mut s: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        s.insert(0, 'h');
    }
    s
}

/// `<prefix>-<n>` → n.
pub fn name_index(prefix: &str, name: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
}
