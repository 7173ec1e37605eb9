//! RabbitMQ 3.10: nodes `rabbit@n1..nN` share one Erlang cookie and form one cluster at first
//! boot. Every node boots at once as a blank standalone broker (no peer discovery at all), and
//! the readiness probe of each node but the first, the seed, then joins it: stop the broker,
//! `join_cluster` the seed, start it again (what `rabbitmqctl stop_app`, `join_cluster` and
//! `start_app` do, in one call). The joins run in parallel. So the two Erlang boots no longer
//! come one after the other, and no node ever waits in peer discovery: with classic_config
//! discovery, a node that connected to the seed while the seed held its discovery lock once left
//! the seed stuck there for minutes (two clusters starting at once).
//!
//! The probes talk to the node with `erl_call` (a small C program from erlang-base that speaks
//! the Erlang distribution protocol), not `rabbitmqctl`: each `rabbitmqctl` call boots an Erlang
//! VM (1.6 s of CPU, 3 s under load on our machines), an `erl_call` takes milliseconds. The
//! expressions wait inside the node (bounded) for what they need, so a step done is seen at
//! once rather than at the next probe. `erl_call` exits 0 whatever the expression did, so each
//! probe expression ends in an atom of its own that the probe looks for. They use only what `rabbitmqctl` itself calls
//! through RPC (`rabbit:stop/0`, `rabbit_mnesia:join_cluster/2`, `rabbit:start/0`,
//! `rabbit_nodes:all_running/0`, `rabbit_policy:parse_set/7`) and `rabbit_boot_state:get/0`.
//! A join is idempotent: a node that is already a member and running passes at once (so the
//! same probe serves a node restarted with its data), and one that stopped half-way through a
//! failed attempt is joined and started again by the next.
//!
//! The VMs do not busy-wait for work (`+sbwt none`): three brokers share a few cores with the
//! controller and the workload, and spinning schedulers take CPU from the nodes still booting.
//! They run in multi-time-warp mode (`+C multi_time_warp`), so that a clock fault reaches
//! `erlang:system_time` too: in the default mode (no time warp) the VM fixes the offset between
//! its monotonic and its system time at boot, and only `os:system_time` would ever show an OS
//! clock change. In this mode the VM adopts the change at its next time-correction check (after
//! 16 s and 60 s in our two trials on 3.10 / OTP 25); monotonic time never jumps.
//! Partitions are handled by `autoheal`: once the network heals, the broker picks the side with
//! the most clients as the winner and restarts the others, which rejoin it and drop what they
//! held. With RabbitMQ's default, `ignore`, the sides stay apart after the heal until an
//! operator restarts nodes: no readiness check (all N nodes running together) ever passed
//! again, so each heal of a RabbitMQ run waited out its bounds (runs of 266 to 638 s for 150 s
//! of workload), and what a drain saw depended on which side it reached. autoheal is a mode the
//! RabbitMQ documentation ("Clustering and Network Partitions") offers for production, and the
//! one in which a mirrored queue's confirmed messages are really lost: those the losing side
//! confirmed while it was cut off (plans/known-anomalies/rabbitmq-mirrored-queue.toml).
//! The server runs as the `rabbitmq` user as the container's main process and logs to stdout.
//! Ready means the node runs and sees all N nodes running in its cluster (what `rabbitmqctl
//! await_online_nodes N` checks), not merely that one broker accepts connections, and the first
//! node has set the `ha-faultline` policy: the classic queue `faultline-mirrored` (the
//! workload's `queue-type = "classic-mirrored"`) is mirrored on every node, synchronised
//! automatically, and an unsynchronised mirror is promoted when the leader fails or shuts down
//! (`ha-promote-on-failure` / `ha-promote-on-shutdown = always`: availability over safety).
//! Setting a policy is idempotent, so the probe that sets it may run again after a heal. The
//! policy matches only that queue; the default quorum queue ignores it. The seed sets it before
//! the others join; a joining node takes the seed's definitions.

use std::time::Duration;

use super::{data_dir, node_names};
use crate::cluster::system::{
    LeaderQuery, NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

pub const AMQP_PORT: u16 = 5672;
pub const DIST_PORT: u16 = 25672;
/// Erlang emulator flags: no scheduler busy-waiting; Erlang system time follows OS clock changes
/// (module doc).
const ERL_ARGS: &str = "+sbwt none +sbwtdcpu none +sbwtdio none +C multi_time_warp";
/// Shared by every node of every run: the cluster is private to its Docker network.
pub const COOKIE: &str = "FAULTLINEFAULTLINECOOKIE";
/// The broker's code: the Erlang applications `rabbit` needs (the closure of the
/// `applications` lists in the `.app` files of RabbitMQ 3.10.8), without the 50 plugins of the
/// package that nothing enables. Every boot scans the applications on the code path (feature
/// flags, boot steps), so fewer of them make a boot cheaper: 5.0–5.3 s of CPU instead of
/// 6.2–7.1 s per boot, measured in pairs on a loaded machine (2026-12-07).
const BROKER_APPS: &[&str] = &[
    "rabbit",
    "rabbit_common",
    "rabbitmq_prelaunch",
    "ranch",
    "ra",
    "sysmon_handler",
    "stdout_formatter",
    "recon",
    "observer_cli",
    "osiris",
    "amqp10_common",
    "syslog",
    "systemd",
    "enough",
    "seshat",
    "jsx",
    "credentials_obfuscation",
    "cuttlefish",
    "aten",
    "gen_batch_server",
];
/// The folder of links to [`BROKER_APPS`] that the server takes as its plugins folder.
const PLUGINS_DIR: &str = "/var/lib/rabbitmq/faultline-plugins";

/// Shell lines that (re)make [`PLUGINS_DIR`] from the package's plugins folder; a missing
/// application stops the node with its name.
fn link_plugins_script() -> String {
    format!(
        "mkdir -p {PLUGINS_DIR} && for a in {apps}; do \
           set -- /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/$a-[0-9]*; \
           [ -d \"$1\" ] || {{ echo \"faultline: no $a in the RabbitMQ package\" >&2; exit 1; }}; \
           ln -sfn \"$1\" {PLUGINS_DIR}/; \
         done && ",
        apps = BROKER_APPS.join(" ")
    )
}
/// Where the probe expressions go in each node.
const JOIN_EXPR_PATH: &str = "/etc/rabbitmq/faultline-join.erl";
const READY_EXPR_PATH: &str = "/etc/rabbitmq/faultline-ready.erl";
/// What the probe expressions answer when they pass (`erl_call -e` prints `{ok, Value}`).
const JOINED: &str = "{ok, faultline_joined}";
const READY: &str = "{ok, faultline_ready}";
/// Longest one `erl_call` may wait for its answer, in seconds (a join restarts the broker).
const ERL_CALL_TIMEOUT_S: u32 = 120;
/// The mirroring policy (module doc): name, pattern, definition.
const MIRROR_POLICY: (&str, &str, &str) = (
    "ha-faultline",
    "^faultline-mirrored$",
    r#"{"ha-mode":"all","ha-sync-mode":"automatic","ha-promote-on-shutdown":"always","ha-promote-on-failure":"always"}"#,
);

/// The probe script: evaluates an expression file on the node through `erl_call` and prints
/// the answer; passes when the answer holds the wanted text. While the node does not answer
/// (its distribution is not up yet) it tries again every 0.25 s, at most a given number of
/// times; an answer ends the attempt either way. The expressions wait inside the node (bounded)
/// for what they need, so a probe attempt is one `docker exec` and a few forks, where polling
/// from the controller costs a `docker exec` every time.
const CALL_SCRIPT_PATH: &str = "/etc/rabbitmq/faultline-call.sh";
const CALL_SCRIPT: &str = r#"#!/bin/sh
# faultline-call.sh NODE FILE WANT TRIES
i=0
while :; do
  out=$(erl_call -sname "rabbit@$1" -c "$FAULTLINE_COOKIE" -timeout "$FAULTLINE_CALL_TIMEOUT_S" -e < "$2" 2>&1)
  case "$out" in
    *"$3"*) echo "$out"; exit 0;;
    "{ok,"*|"{error,"*) echo "$out"; exit 1;;
  esac
  i=$((i+1))
  if [ "$i" -ge "$4" ]; then echo "$out"; exit 1; fi
  sleep 0.25
done
"#;
/// Tries of one probe attempt while the node does not answer (about 15 s).
const CALL_TRIES: u32 = 60;
/// How long an expression waits for what it needs: this many tenths of a second per wait.
const WAIT_TENTHS: u32 = 100;

/// The probe command that evaluates the expressions in `file` on node `rabbit@<name>` and
/// passes when the answer holds `want` (see [`CALL_SCRIPT`]).
pub fn erl_call(name: &str, file: &str, want: &str) -> Vec<String> {
    let script = format!(
        "FAULTLINE_COOKIE={COOKIE} FAULTLINE_CALL_TIMEOUT_S={ERL_CALL_TIMEOUT_S} exec {CALL_SCRIPT_PATH} \"$@\""
    );
    [
        "sh",
        "-c",
        &script,
        "faultline-call",
        name,
        file,
        want,
        &CALL_TRIES.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `Wait(Cond)`: true once `Cond()` holds, checked every 0.1 s, false after [`WAIT_TENTHS`].
fn wait_fun() -> String {
    format!(
        "Wait = fun(Cond) -> Loop = fun L(0) -> Cond(); L(K) -> case Cond() of true -> true; \
         false -> timer:sleep(100), L(K - 1) end end, Loop({WAIT_TENTHS}) end,\n"
    )
}

/// The expression that joins this node to `seed` (module doc), ending in `faultline_joined`.
/// It waits for this node to finish booting (or to be stopped by an earlier join attempt, which
/// leaves a mark in `persistent_term`: a VM that has not booted yet is `stopped` too) and for
/// the seed to run. A blank node joins only once every node in `earlier` (the joiners before it)
/// runs in the seed's cluster: two nodes joining at once can both fail to merge the database
/// schema (`combine_error`), after which neither boots again (seen under load, 2026-12-07), so
/// the boots run in parallel and the joins one after the other.
fn join_expr(seed: &str, earlier: &[String]) -> String {
    let earlier = earlier
        .iter()
        .map(|n| format!("'rabbit@{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "Seed = 'rabbit@{seed}',
Earlier = [{earlier}],
{wait}Settled = fun() -> State = rabbit_boot_state:get(),
  State =:= ready orelse (State =:= stopped andalso persistent_term:get(faultline_join, false)) end,
SeedReady = fun() -> rpc:call(Seed, rabbit_boot_state, get, [], 5000) =:= ready end,
EarlierIn = fun() -> Running = rpc:call(Seed, rabbit_nodes, all_running, [], 5000),
  is_list(Running) andalso lists:all(fun(E) -> lists:member(E, Running) end, Earlier) end,
case Wait(Settled) andalso Wait(SeedReady) of
  false -> {{waiting, rabbit_boot_state:get(), rpc:call(Seed, rabbit_boot_state, get, [], 5000)}};
  true ->
    Member = lists:member(Seed, rabbit_mnesia:cluster_nodes(all)),
    case {{rabbit_boot_state:get(), Member}} of
      {{ready, true}} -> faultline_joined;
      {{_, true}} ->
        persistent_term:put(faultline_join, true),
        ok = rabbit:stop(),
        ok = rabbit:start(),
        faultline_joined;
      {{_, false}} ->
        case Wait(EarlierIn) of
          false -> {{waiting_for, Earlier, rpc:call(Seed, rabbit_nodes, all_running, [], 5000)}};
          true ->
            persistent_term:put(faultline_join, true),
            ok = rabbit:stop(),
            ok = rabbit_mnesia:join_cluster(Seed, disc),
            ok = rabbit:start(),
            faultline_joined
        end
    end
end.
",
        wait = wait_fun()
    )
}

/// The expression that says whether this node runs and sees `n` running nodes (waiting for
/// both), ending in `faultline_ready`; with `policy`, it first sets the mirroring policy.
fn ready_expr(n: usize, policy: bool) -> String {
    let set_policy = if policy {
        let (name, pattern, definition) = MIRROR_POLICY;
        let definition = definition.replace('"', "\\\"");
        format!(
            "ok = rabbit_policy:parse_set(<<\"/\">>, <<\"{name}\">>, <<\"{pattern}\">>, \
             <<\"{definition}\">>, <<\"0\">>, <<\"queues\">>, <<\"faultline\">>),\n    "
        )
    } else {
        String::new()
    };
    format!(
        "{wait}case Wait(fun() -> rabbit_boot_state:get() =:= ready end) of
  true ->
    {set_policy}case Wait(fun() -> length(rabbit_nodes:all_running()) =:= {n} end) of
      true -> faultline_ready;
      false -> {{running, rabbit_nodes:all_running()}}
    end;
  false -> {{boot_state, rabbit_boot_state:get()}}
end.
",
        wait = wait_fun()
    )
}

pub fn system(params: &SystemParams) -> System {
    let names = node_names(params.nodes.unwrap_or(3));
    let n = names.len();
    let seed = names[0].clone();
    let nodes = names
        .iter()
        .map(|name| {
            let dir = data_dir(name);
            let is_seed = *name == seed;
            let conf = "loopback_users = none\nlisteners.tcp.default = 5672\n\
                        cluster_partition_handling = autoheal\n";
            let dist_port = super::peer_port(params, name, DIST_PORT);
            let env_conf = format!(
                "NODENAME=rabbit@{name}\nMNESIA_BASE={dir}/mnesia\nLOGS=-\nDIST_PORT={dist_port}\n\
                 PLUGINS_DIR={PLUGINS_DIR}\n\
                 SERVER_ADDITIONAL_ERL_ARGS=\"{ERL_ARGS}\"\n"
            );
            let script = format!(
                "{link_plugins}chown -R rabbitmq:rabbitmq {dir} /var/lib/rabbitmq && \
                 chmod 400 /var/lib/rabbitmq/.erlang.cookie && \
                 cd /var/lib/rabbitmq && \
                 exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
                 env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server",
                link_plugins = link_plugins_script()
            );
            let mut files = vec![
                NodeFile::text("/etc/rabbitmq/rabbitmq.conf", conf),
                NodeFile::text("/etc/rabbitmq/rabbitmq-env.conf", env_conf),
                NodeFile {
                    path: "/var/lib/rabbitmq/.erlang.cookie".into(),
                    contents: COOKIE.as_bytes().to_vec(),
                    mode: 0o400,
                },
                NodeFile::text(READY_EXPR_PATH, ready_expr(n, is_seed)),
                NodeFile {
                    path: CALL_SCRIPT_PATH.into(),
                    contents: CALL_SCRIPT.as_bytes().to_vec(),
                    mode: 0o755,
                },
            ];
            let mut probes = vec![];
            if !is_seed {
                let earlier = &names[1..names.iter().position(|x| x == name).unwrap_or(1)];
                files.push(NodeFile::text(JOIN_EXPR_PATH, join_expr(&seed, earlier)));
                probes.push(Probe::Exec {
                    cmd: erl_call(name, JOIN_EXPR_PATH, JOINED),
                    output_contains: Some(JOINED.into()),
                });
            }
            probes.push(Probe::Exec {
                cmd: erl_call(name, READY_EXPR_PATH, READY),
                output_contains: Some(READY.into()),
            });
            NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd: vec!["/bin/bash".into(), "-c".into(), script],
                env: vec![],
                data_dir: dir,
                files,
                ports: vec![
                    PortSpec {
                        name: "amqp".into(),
                        container_port: AMQP_PORT,
                    },
                    // Erlang distribution between the nodes (peers find it through epmd).
                    PortSpec {
                        name: "peer".into(),
                        container_port: dist_port,
                    },
                ],
                probe: Probe::All(probes),
                log_files: vec![],
            }
        })
        .collect();
    System {
        name: workloads::BuiltinCluster::RabbitMq.name().into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(180),
        // Each attempt polls inside the node; between attempts, the usual pause.
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(node: &'a NodeSpec, path: &str) -> Option<&'a NodeFile> {
        node.files.iter().find(|f| f.path == path)
    }

    fn text(node: &NodeSpec, path: &str) -> String {
        String::from_utf8(file(node, path).expect(path).contents.clone()).unwrap()
    }

    #[test]
    fn only_the_seed_sets_the_mirroring_policy_and_the_others_join_it() {
        let s = system(&SystemParams::default());
        let setters: Vec<&str> = s
            .nodes
            .iter()
            .filter(|n| text(n, READY_EXPR_PATH).contains("rabbit_policy:parse_set"))
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(setters, ["n1"]);
        assert!(
            text(&s.nodes[0], READY_EXPR_PATH).contains(r#"\"ha-promote-on-failure\":\"always\""#)
        );
        assert!(file(&s.nodes[0], JOIN_EXPR_PATH).is_none());
        for node in &s.nodes[1..] {
            assert!(text(node, JOIN_EXPR_PATH).starts_with("Seed = 'rabbit@n1',"));
            // The join comes first, then the cluster view.
            let Probe::All(probes) = &node.probe else {
                panic!("{:?}", node.probe)
            };
            let wants: Vec<_> = probes
                .iter()
                .map(|p| match p {
                    Probe::Exec {
                        output_contains, ..
                    } => output_contains.clone().unwrap(),
                    p => panic!("{p:?}"),
                })
                .collect();
            assert_eq!(wants, [JOINED, READY]);
        }
        for node in &s.nodes {
            assert!(text(node, READY_EXPR_PATH)
                .contains("length(rabbit_nodes:all_running()) =:= 3 end"));
        }
    }

    #[test]
    fn nodes_boot_at_once_but_join_one_after_the_other() {
        let s = system(&SystemParams {
            nodes: Some(4),
            ..SystemParams::default()
        });
        let earlier: Vec<String> = s.nodes[1..]
            .iter()
            .map(|n| {
                let join = text(n, JOIN_EXPR_PATH);
                join.lines().nth(1).unwrap().to_string()
            })
            .collect();
        assert_eq!(
            earlier,
            [
                "Earlier = [],",
                "Earlier = ['rabbit@n2'],",
                "Earlier = ['rabbit@n2', 'rabbit@n3'],"
            ]
        );
        // The wait for the earlier joiners guards the join itself, not a restart of a member.
        let join = text(&s.nodes[2], JOIN_EXPR_PATH);
        let wait = join.find("case Wait(EarlierIn)").unwrap();
        assert!(wait < join.find("rabbit_mnesia:join_cluster").unwrap());
        assert!(join.find("{_, true} ->").unwrap() < wait);
    }

    #[test]
    fn no_node_discovers_peers_and_every_node_shares_the_cookie() {
        let s = system(&SystemParams::default());
        for node in &s.nodes {
            let conf = text(node, "/etc/rabbitmq/rabbitmq.conf");
            assert!(!conf.contains("cluster_formation"), "{conf}");
            let cookie = file(node, "/var/lib/rabbitmq/.erlang.cookie").unwrap();
            assert_eq!(cookie.contents, COOKIE.as_bytes());
            assert_eq!(cookie.mode, 0o400);
        }
        assert_eq!(
            erl_call("n2", READY_EXPR_PATH, READY)[3..],
            ["faultline-call", "n2", READY_EXPR_PATH, READY, "60"]
        );
    }

    #[test]
    fn a_single_node_has_no_join_and_waits_for_itself() {
        let s = system(&SystemParams {
            nodes: Some(1),
            ..SystemParams::default()
        });
        assert!(file(&s.nodes[0], JOIN_EXPR_PATH).is_none());
        assert!(text(&s.nodes[0], READY_EXPR_PATH)
            .contains("length(rabbit_nodes:all_running()) =:= 1 end"));
    }

    #[test]
    fn with_distinct_peer_ports_each_node_has_its_own_distribution_port() {
        let s = system(&SystemParams {
            distinct_peer_ports: true,
            ..SystemParams::default()
        });
        let env = text(&s.nodes[1], "/etc/rabbitmq/rabbitmq-env.conf");
        assert!(env.contains("DIST_PORT=25674\n"), "{env}");
        assert_eq!(s.nodes[1].ports[1].container_port, 25674);
        let plain = system(&SystemParams::default());
        let env = text(&plain.nodes[1], "/etc/rabbitmq/rabbitmq-env.conf");
        assert!(env.contains("DIST_PORT=25672\n"), "{env}");
    }
}
