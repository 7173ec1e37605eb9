use checkers::linear::Linearizable;
use checkers::{formats, Budget, Checker};
use std::time::Instant;
#[test]
#[ignore]
fn probe() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories/porcupine/etcd");
    let h = formats::read_path(&dir.join("etcd_002.log"), None).unwrap();
    let c = Linearizable::new(Some("cas-register"), None).unwrap();
    let mut best = f64::MAX; let mut best_ops = f64::MAX;
    let t0 = Instant::now();
    for _ in 0..20000 {
        let t = Instant::now(); let o = h.ops().unwrap(); best_ops = best_ops.min(t.elapsed().as_secs_f64()*1e6); std::hint::black_box(o);
        let t = Instant::now(); let r = c.check(&h, &Budget::default()).unwrap(); best = best.min(t.elapsed().as_secs_f64()*1e6);
        std::hint::black_box(r);
    }
    println!("check min {best:.1} us, ops() min {best_ops:.1} us, loop {:.1} us/iter", t0.elapsed().as_secs_f64()*1e6/20000.0);
}
