use checkers::linear::Linearizable;
use checkers::{formats, Budget, Checker};
#[test]
#[ignore]
fn probe() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/histories/porcupine");
    let c = Linearizable::new(Some("cas-register"), None).unwrap();
    for i in 0..70 {
        let h = formats::read_path(&dir.join(format!("etcd/etcd_{i:03}.log")), None).unwrap();
        let r = c.check(&h, &Budget::default()).unwrap();
        if let Some(a) = r.anomalies.first() { println!("{i:03}: {}", a.explanation); }
    }
    let c = Linearizable::new(Some("kv"), None).unwrap();
    for f in ["c01-bad.txt", "c10-bad.txt"] {
        let h = formats::read_path(&dir.join("kv").join(f), None).unwrap();
        let r = c.check(&h, &Budget::default()).unwrap();
        println!("{f}: {}\n{}", r.summary, serde_json::to_string(&r.anomalies[0]).unwrap());
    }
}
