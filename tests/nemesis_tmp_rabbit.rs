mod nemesis_support;
use nemesis_support::{image_or_skip, nemesis};
use nemeses::clock::ClockSetting;
use nemeses::schedule::FaultKind;
use std::sync::Arc;
use faultline::cluster::{Cluster, ClusterOptions, System, SystemParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_rabbit() {
    let image = image_or_skip("tmp").await.unwrap();
    for warp in [true] {
        let params = SystemParams { image: Some(image.clone()), nodes: Some(1), ..Default::default() };
        let s = System::by_name("rabbitmq", &params).unwrap();
        let mut opts = ClusterOptions { files: faultline::nemesis::clock_shim_files(), ..Default::default() };
        if warp { opts.env.push(("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".into(), "+C multi_time_warp".into())); }
        let c = Arc::new(Cluster::up(s, opts).await.unwrap());
        let (n, _rec) = nemesis(&c);
        n.prepare(&[FaultKind::Clock]).await.unwrap();
        let args = c.exec("n1", &["sh", "-c", "tr '\\0' ' ' < /proc/$(pgrep -o beam.smp)/cmdline"]).await.unwrap();
        println!("args: {}", args.output);
        let v = n.clocks().set("n1", ClockSetting::offset_ms(7000)).await.unwrap();
        for _ in 0..5 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let os = c.exec("n1", &["rabbitmqctl", "-q", "eval", "{os:system_time(millisecond), erlang:system_time(millisecond), erlang:system_info(time_warp_mode)}."]).await.unwrap();
            let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
            println!("  later os/erlang: {} host {host}", os.output.trim());
        }
        let os = c.exec("n1", &["rabbitmqctl", "-q", "eval", "{os:system_time(millisecond), erlang:system_time(millisecond)}."]).await.unwrap();
        let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        println!("warp={warp}: {v:?}\n  os/erlang: {} host {host}", os.output.trim());
        n.clocks().reset("n1").await.unwrap();
        drop(n);
        if let Ok(c) = Arc::try_unwrap(c) { c.teardown().await.unwrap(); }
    }
}
