//! The network API end to end with bollard: the built-in networks, create
//! with dockerd's checks and status codes, a container's NetworkSettings and
//! the network's view of it, connect/disconnect, removal in use, prune.

mod common;

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
};
use bollard::Docker;
use common::{client, pull, TestDaemon, TestRegistry};

fn status(e: &bollard::errors::Error) -> u16 {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => *status_code,
        other => panic!("not a server error: {other}"),
    }
}

async fn create_net(
    docker: &Docker,
    name: &str,
    subnet: Option<&str>,
    gateway: Option<&str>,
) -> Result<String, bollard::errors::Error> {
    let ipam = subnet.map(|s| Ipam {
        config: Some(vec![IpamConfig {
            subnet: Some(s.to_string()),
            gateway: gateway.map(String::from),
            ..Default::default()
        }]),
        ..Default::default()
    });
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_string(),
            ipam,
            ..Default::default()
        })
        .await
        .map(|r| r.id)
}

async fn inspect(docker: &Docker, id: &str) -> bollard::models::ContainerInspectResponse {
    docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect container")
}

fn in_subnet(ip: &str, subnet: &str) -> bool {
    let (base, prefix) = subnet.split_once('/').expect("cidr");
    let p: u32 = prefix.parse().expect("prefix");
    let to = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().expect("ip"));
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    to(ip) & mask == to(base) & mask
}

#[tokio::test]
async fn networks_api_as_dockerd_answers_it() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let busybox = reg.image("busybox");
    pull(&docker, &busybox).await.expect("pull");

    // The three built-in networks.
    let list = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .expect("list");
    let drivers: HashMap<String, String> = list
        .iter()
        .map(|n| {
            (
                n.name.clone().unwrap_or_default(),
                n.driver.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(drivers.get("bridge").map(String::as_str), Some("bridge"));
    assert_eq!(drivers.get("host").map(String::as_str), Some("host"));
    assert_eq!(drivers.get("none").map(String::as_str), Some("null"));

    // A user network with an automatic subnet, and dockerd's refusals.
    let id = create_net(&docker, "tnet", None, None)
        .await
        .expect("create");
    let net = docker
        .inspect_network(
            "tnet",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .expect("inspect");
    assert_eq!(net.id.as_deref(), Some(id.as_str()));
    let subnet = net
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.first().and_then(|c| c.subnet.clone()))
        .expect("subnet");
    let e = create_net(&docker, "tnet", None, None)
        .await
        .expect_err("duplicate");
    assert_eq!(status(&e), 409, "{e}");
    let e = create_net(&docker, "over", Some(&subnet), None)
        .await
        .expect_err("overlap");
    assert_eq!(status(&e), 403, "{e}");
    let e = create_net(&docker, "gw", Some("10.213.250.0/24"), Some("10.213.251.1"))
        .await
        .expect_err("gateway");
    assert_eq!(status(&e), 400, "{e}");
    let e = docker
        .remove_network("bridge")
        .await
        .expect_err("pre-defined");
    assert_eq!(status(&e), 403, "{e}");
    let e = docker
        .inspect_network(
            "nosuch",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .expect_err("unknown");
    assert_eq!(status(&e), 404, "{e}");

    // A container on it, with an alias: its address, and the network's view.
    let mut endpoints = HashMap::new();
    endpoints.insert(
        "tnet".to_string(),
        EndpointSettings {
            aliases: Some(vec!["db".into()]),
            ..Default::default()
        },
    );
    let cid = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(busybox.clone()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                host_config: Some(HostConfig {
                    network_mode: Some("tnet".into()),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(endpoints),
                }),
                ..Default::default()
            },
        )
        .await
        .expect("create container")
        .id;
    docker
        .start_container(
            &cid,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start");
    let c = inspect(&docker, &cid).await;
    let nets = c
        .network_settings
        .and_then(|n| n.networks)
        .expect("networks");
    let ep = nets.get("tnet").expect("on tnet");
    let ip = ep.ip_address.clone().expect("ip");
    assert!(in_subnet(&ip, &subnet), "{ip} not in {subnet}");
    assert_eq!(ep.network_id.as_deref(), Some(id.as_str()));
    let aliases = ep.aliases.clone().unwrap_or_default();
    assert!(
        aliases.contains(&"db".to_string()) && aliases.contains(&cid[..12].to_string()),
        "{aliases:?}"
    );
    let net = docker
        .inspect_network(
            "tnet",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .expect("inspect");
    let members = net.containers.expect("containers");
    assert_eq!(
        members.get(&cid).and_then(|m| m.ipv4_address.clone()),
        Some(format!(
            "{ip}/{}",
            subnet.split('/').nth(1).expect("prefix")
        ))
    );

    // In use: not removed.
    let e = docker.remove_network("tnet").await.expect_err("in use");
    assert_eq!(status(&e), 403, "{e}");
    assert!(e.to_string().contains("has active endpoints"), "{e}");

    // Connect to the default bridge too, then disconnect.
    docker
        .connect_network(
            "bridge",
            NetworkConnectRequest {
                container: cid.clone(),
                endpoint_config: None,
            },
        )
        .await
        .expect("connect");
    let count = |c: bollard::models::ContainerInspectResponse| {
        c.network_settings.and_then(|n| n.networks).map(|n| n.len())
    };
    let c = inspect(&docker, &cid).await;
    assert_eq!(count(c), Some(2));
    let e = docker
        .connect_network(
            "tnet",
            NetworkConnectRequest {
                container: cid.clone(),
                endpoint_config: None,
            },
        )
        .await
        .expect_err("twice");
    assert_eq!(status(&e), 403, "{e}");
    docker
        .disconnect_network(
            "bridge",
            NetworkDisconnectRequest {
                container: cid.clone(),
                force: None,
            },
        )
        .await
        .expect("disconnect");
    let c = inspect(&docker, &cid).await;
    assert_eq!(count(c), Some(1));

    // Gone with the container, then pruned.
    docker
        .remove_container(
            &cid,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
        )
        .await
        .expect("rm");
    let pruned = docker
        .prune_networks(None::<bollard::query_parameters::PruneNetworksOptions>)
        .await
        .expect("prune");
    assert_eq!(pruned.networks_deleted, Some(vec!["tnet".to_string()]));
    let left: Vec<String> = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .expect("list")
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}
