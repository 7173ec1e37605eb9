use checkers::linear::Linearizable;
use checkers::linear::synth::{register_history, SynthParams};
use checkers::{Budget, Checker};
use std::time::Instant;
#[test]
#[ignore]
fn probe() {
    let c = Linearizable::new(Some("cas-register"), None).unwrap();
    for (procs, info, values, keys) in [(10,20,5,10),(30,50,5,10),(50,100,5,10),(100,100,5,10),(20,200,3,1),(10,100,5,1)] {
        let mut h = register_history(&SynthParams { seed: 7, ops: 2000, keys, processes: procs, values, info_per_mille: info, cas: true });
        let t = Instant::now(); let r = c.check(&h, &Budget { time_limit: Some(std::time::Duration::from_secs(60)), memory_bytes_max: Some(4 << 30) }).unwrap();
        println!("procs {procs} info {info} values {values} keys {keys}: {} {:.3} ms states {} peak {}", r.verdict, t.elapsed().as_secs_f64()*1e3, r.details["states_explored"], r.details["peak_cache_bytes"]);
        // corrupt the last ok read
        let pos = h.events.iter().rposition(|e| e.f == "read" && e.kind == checkers::EventType::Ok && !e.value.is_null()).unwrap();
        h.events[pos].value = serde_json::json!(999);
        let t = Instant::now(); let r = c.check(&h, &Budget { time_limit: Some(std::time::Duration::from_secs(60)), memory_bytes_max: Some(4 << 30) }).unwrap();
        println!("   corrupted: {} {:.3} ms states {} peak {}", r.verdict, t.elapsed().as_secs_f64()*1e3, r.details["states_explored"], r.details["peak_cache_bytes"]);
        let pos = h.events.iter().position(|e| e.f == "read" && e.kind == checkers::EventType::Ok && !e.value.is_null()).unwrap();
        h.events[pos].value = serde_json::json!(999);
        let t = Instant::now(); let r = c.check(&h, &Budget { time_limit: Some(std::time::Duration::from_secs(60)), memory_bytes_max: Some(4 << 30) }).unwrap();
        println!("   corrupted first: {} {:.3} ms states {} peak {}", r.verdict, t.elapsed().as_secs_f64()*1e3, r.details["states_explored"], r.details["peak_cache_bytes"]);
    }
}
