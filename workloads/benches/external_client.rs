//! The cost of a client in another language (`clients::external`): operations per second
//! through the runner when every operation is a JSON line to a child process and one back, the
//! child being the smallest correct client (python3, answering `ok` at once), so the figure is
//! the protocol's and the pipes' cost, not a system's.
//!
//! `cargo bench -p workloads --bench external_client` prints operations per second and the mean
//! round trip. Environment: `EXTERNAL_BENCH_OPS` (default 20000), `EXTERNAL_BENCH_CONCURRENCY`
//! (default 4).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::clients::external::{ExternalClientConfig, ExternalFactory, ExternalNode};
use workloads::generator;
use workloads::{Invocation, PhaseLimits, Recorder, Runner, RunnerConfig};

const CLIENT: &str = r#"
import sys
for line in sys.stdin:
    if '"init"' in line:
        sys.stdout.write('{"type":"init_ok","protocol":1}\n')
    elif '"setup"' in line or '"teardown"' in line:
        sys.stdout.write('{"type":"%s_ok"}\n' % ("setup" if '"setup"' in line else "teardown"))
    else:
        sys.stdout.write('{"type":"ok","value":null}\n')
    sys.stdout.flush()
"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let ops = env_or("EXTERNAL_BENCH_OPS", 20_000);
    let concurrency = env_or("EXTERNAL_BENCH_CONCURRENCY", 4) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("client.py"), CLIENT).expect("client script");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (completed, elapsed) = rt.block_on(async {
        let factory = ExternalFactory::new(ExternalClientConfig {
            command: vec!["python3".into(), "-u".into(), "client.py".into()],
            cwd: Some(dir.path().to_path_buf()),
            env: vec![],
            workload: "register".into(),
            nodes: vec![ExternalNode {
                name: "n1".into(),
                addresses: BTreeMap::from([("client".into(), "127.0.0.1:1".into())]),
            }],
            stderr_file: None,
            init_timeout: Duration::from_secs(10),
        })
        .expect("factory");
        let recorder = Recorder::create(dir.path().join("history.jsonl")).expect("history");
        let mut config = RunnerConfig::new(concurrency, vec!["n1".into()], 1);
        config.connect_timeout = Duration::from_secs(15);
        let mut runner = Runner::start(config, Arc::new(factory), recorder.clone())
            .await
            .expect("runner");
        let op = Invocation::new("write", serde_json::json!(1)).with_key("r");
        let started = Instant::now();
        let summary = runner
            .run_phase(
                generator::limit(ops, generator::repeat(op)),
                PhaseLimits {
                    time_limit: Duration::from_secs(600),
                    grace: Duration::from_secs(5),
                },
                &CancellationToken::new(),
            )
            .await
            .expect("phase");
        let elapsed = started.elapsed();
        runner.close().await.expect("close");
        recorder.finish().await.expect("finish");
        (summary.ok + summary.fail + summary.info, elapsed)
    });
    let secs = elapsed.as_secs_f64();
    println!("external client: python3 answering ok at once, concurrency {concurrency}");
    println!(
        "external client: {completed} ops in {secs:.2} s: {:.0} ops per second, mean round trip {:.0} us per process",
        completed as f64 / secs,
        secs * 1e6 * concurrency as f64 / completed as f64
    );
}
